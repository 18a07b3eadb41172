#!/usr/bin/env bash
# Runs nginx on 127.0.0.1:$PORT (default 8080) with the example plugins in
# front of a real upstream (upstream.py on $UPSTREAM_PORT, default 8081),
# prints what to curl, and serves until Ctrl-C.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
port=${PORT:-8080}
uport=${UPSTREAM_PORT:-8081}
build=${BUILD:-build/rel}
prefix="$root/build/demo"
module="$root/$build/nginx/ngx_http_pw_module.so"
wasm="$root/build/wasm"

mkdir -p "$prefix/conf" "$prefix/logs" "$prefix/tmp" "$prefix/html/static"
echo "a static file served by nginx itself; the secret stays secret" \
    > "$prefix/html/static/note.txt"

cat > "$prefix/conf/nginx.conf" <<CONF
load_module $module;
worker_processes 2;
daemon off;
pid $prefix/logs/nginx.pid;
error_log $prefix/logs/error.log info;
events { worker_connections 1024; }

wasm {
    module hello          $wasm/hello.wasm;
    module http_headers   $wasm/http_headers.wasm;
    module config_header  $wasm/config_header.wasm;
    module body_redact    $wasm/body_redact.wasm;
}

http {
    access_log $prefix/logs/access.log;
    client_body_temp_path $prefix/tmp/body;
    proxy_temp_path $prefix/tmp/proxy;
    fastcgi_temp_path $prefix/tmp/fastcgi;
    uwsgi_temp_path $prefix/tmp/uwsgi;
    scgi_temp_path $prefix/tmp/scgi;

    upstream backend { server 127.0.0.1:$uport; keepalive 16; }

    server {
        listen 127.0.0.1:$port;

        proxy_wasm hello 'demo';
        proxy_wasm http_headers;
        proxy_wasm config_header 'x-demo: configured in nginx.conf';
        proxy_wasm body_redact 'secret' on_error=open;

        location / {
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_pass http://backend;
        }

        location /static/ {
            root $prefix/html;
        }
    }
}
CONF

python3 "$root/examples/nginx/upstream.py" "$uport" &
upstream=$!
trap 'kill $upstream 2>/dev/null; [ -f "$prefix/logs/nginx.pid" ] && kill -QUIT "$(cat "$prefix/logs/nginx.pid")" 2>/dev/null; true' EXIT INT TERM

nginx -t -p "$prefix" -c conf/nginx.conf -e "$prefix/logs/error.log"

cat <<MSG

nginx is serving on http://127.0.0.1:$port with four example plugins
(hello, http_headers, config_header, body_redact) in front of the upstream
on 127.0.0.1:$uport. Try:

  curl -i http://127.0.0.1:$port/hello            # answered by the plugin
  curl -i http://127.0.0.1:$port/anything         # proxied: x-hello, x-demo, secret redacted
  curl -i -H 'x-internal-token: t' http://127.0.0.1:$port/   # token stripped
  curl -i http://127.0.0.1:$port/static/note.txt  # static file, redacted too
  tail -f $prefix/logs/error.log                  # plugin logs, ticks

Ctrl-C stops it.
MSG

nginx -p "$prefix" -c conf/nginx.conf -e "$prefix/logs/error.log"
