cp /agdb/config/agdb_server.yaml /agdb/agdb_server.yaml
sed -i "s/{id}/$AGDB_REPLICA_INDEX/g" /agdb/agdb_server.yaml
/usr/local/bin/agdb_server
