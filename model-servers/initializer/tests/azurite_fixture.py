"""Fills Azurite for the initializer's tests, with azure-storage-blob (Microsoft's SDK).

    python azurite_fixture.py <connection-string> <container> <src-dir> <prefix>

Creates the container and one block blob per file of <src-dir> under <prefix>/.
"""

import os
import sys

from azure.storage.blob import BlobServiceClient

conn, container, src, prefix = sys.argv[1:5]
client = BlobServiceClient.from_connection_string(conn).create_container(container)
for root, _, files in os.walk(src):
    for name in sorted(files):
        path = os.path.join(root, name)
        rel = os.path.relpath(path, src).replace(os.sep, "/")
        with open(path, "rb") as f:
            client.upload_blob(name=f"{prefix}/{rel}", data=f.read())
