"""Creates N services through the API with C concurrent keep-alive clients."""
import http.client
import json
import sys
import threading
from urllib.parse import urlparse


def worker(url, token, names, failures):
    u = urlparse(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
    headers = {"Authorization": "Bearer " + token, "Content-Type": "application/json"}
    for name in names:
        body = json.dumps({"name": name, "replicas": 1,
                           "labels": {"bench": "yes"},
                           "task": {"command": ["/bin/sleep", "1000"],
                                    "env": {"N": name}}})
        conn.request("POST", "/v1/services", body, headers)
        resp = conn.getresponse()
        resp.read()
        if resp.status != 201:
            failures.append((name, resp.status))


def main():
    url, token, n, c = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    names = ["svc-%05d" % i for i in range(n)]
    failures = []
    threads = [threading.Thread(target=worker, args=(url, token, names[i::c], failures))
               for i in range(c)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if failures:
        print("load_services: %d failures, first %r" % (len(failures), failures[0]),
              file=sys.stderr)
        sys.exit(1)


main()
