#!/bin/bash
# The shadowtap image's HEALTHCHECK: healthy while GET /readyz on the admin port answers 200
# (listeners bound, not draining). The image has no curl or wget, so the request goes out
# through bash's /dev/tcp. tests/deploy.rs runs this script against the real binary.
#
# SHADOWTAP_HEALTHCHECK_ADDRESS: the admin address as IP:PORT (default 127.0.0.1:9901; an
# admin bound to 0.0.0.0 answers on 127.0.0.1 too).
set -u
address="${SHADOWTAP_HEALTHCHECK_ADDRESS:-127.0.0.1:9901}"
host="${address%:*}"
port="${address##*:}"
exec 3<>"/dev/tcp/${host}/${port}" || exit 1
printf 'GET /readyz HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n' "$address" >&3 || exit 1
IFS= read -r -t 3 status_line <&3 || exit 1
case "$status_line" in
  "HTTP/1.1 200 "*) exit 0 ;;
  *) echo "shadowtap /readyz: ${status_line%$'\r'}" >&2; exit 1 ;;
esac
