# shellcheck shell=bash
# Shared by profile.sh and ab.sh (sourced, not run): the port layout, the upstream nginx (and a
# second one as a healthy shadow), and shadowtap's config, the same way in both tools.
# The caller sets HERE (this directory), RUN_DIR (its temporary directory), LOADGEN_CPU and
# an array PIDS (processes to stop on exit).

# Ports from a base: BASE+81 upstream, +82 shadow, +90 shadowtap, +1901 its admin port, and
# the upstreams' h2c servers on +100/+101 (run.sh's upstream config listens there too).
# shellcheck disable=SC2034 # the layout is read by the sourcing script
set_ports() { # BASE
  [[ "$1" =~ ^[0-9]+$ && "$1" -ge 1024 && "$1" -le 60000 ]] || { echo "--ports: 1024..60000" >&2; exit 2; }
  UPSTREAM_PORT=$(($1 + 81)); SHADOW_PORT=$(($1 + 82)); H2_PORT=$(($1 + 100))
  SHADOW_H2_PORT=$(($1 + 101)); LISTEN_PORT=$(($1 + 90)); ADMIN_PORT=$(($1 + 1901))
}

wait_port() { # PORT: up to 30 s
  local _; for _ in $(seq 1 300); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done
  echo "nothing on port $1" >&2; return 1
}

# Starts an upstream nginx in DIR (RUN_DIR itself, or a directory of its own for the shadow,
# which gets the same bodies) on PORT, pinned to LOADGEN_CPU. The bodies are written into
# RUN_DIR/www on first use.
start_upstream() { # DIR PORT H2_PORT
  local f
  if [[ ! -e "$RUN_DIR/www/body-64" ]]; then
    mkdir -p "$RUN_DIR/www" "$RUN_DIR/tmp"
    head -c 64 /dev/zero | tr '\0' 'x' >"$RUN_DIR/www/body-64"
    head -c 16384 /dev/zero | tr '\0' 'y' >"$RUN_DIR/www/body-16k"
    # The JSON answer of run.sh's json scenario (--path /json).
    python3 "$HERE/harness.py" make-json "$RUN_DIR/www/body-16k.json" 16384
  fi
  if [[ "$1" != "$RUN_DIR" ]]; then
    # -p: the same mtime, so the shadow's ETag and Last-Modified equal the primary's (the
    # comparison's work, and so profile.sh's counts, must not depend on when the copy ran).
    mkdir -p "$1/www" "$1/tmp"; cp -p "$RUN_DIR"/www/body-* "$1/www/"; chmod -R 755 "$1"
  fi
  for f in upstream upstream-locations; do
    sed -e "s#@RUN@#$1#g" -e "s#@UPSTREAM_PORT@#$2#g" -e "s#@UPSTREAM_H2_PORT@#$3#g" \
      -e 's#@POST_ANSWER@#{"stored":true}#g' "$HERE/conf/$f.conf.in" >"$1/$f.conf"
  done
  taskset -c "$LOADGEN_CPU" nginx -p "$1" -c "$1/upstream.conf" >"$1/upstream.out" 2>&1 &
  PIDS+=($!); wait_port "$2"
}

# shadowtap's config for the ports above: the live path alone, or (MIRROR=1) mirroring
# MIRROR_PERCENT (default every) request to the shadow and comparing.
write_shadowtap_config() { # OUT MIRROR
  local template="$HERE/conf/shadowtap.toml.in"
  (($2)) && template="$HERE/conf/shadowtap-mirror.toml.in"
  sed -e "s#@UPSTREAM_PORT@#$UPSTREAM_PORT#g" -e "s#@LISTEN_PORT@#$LISTEN_PORT#g" \
    -e "s#@ADMIN_PORT@#$ADMIN_PORT#g" -e "s#@SHADOW_PORT@#$SHADOW_PORT#g" \
    -e "s#@MIRROR_TIMEOUT@#5s#g" -e "s#^percent = 100\$#percent = ${MIRROR_PERCENT:-100}#" \
    "$template" >"$1"
}
