#!/bin/sh
# Makes the EXAMPLE certificates config/edge.toml names: a throw-away CA and a leaf for
# example.com and *.example.com, signed by it. TEST-ONLY: the keys are committed so that
# the example config passes `shadowtap check`; never serve them to real clients.
#
#   sh config/tls/make-example-certs.sh        # from the repository root; needs openssl
set -eu
cd "$(dirname "$0")"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 3650 \
    -subj "/CN=shadowtap example CA (test only)" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign" \
    -keyout example-ca.key -out example-ca.pem
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -subj "/CN=example.com (test only)" -keyout example.key -out example.csr
printf 'subjectAltName=DNS:example.com,DNS:*.example.com\nextendedKeyUsage=serverAuth\n' > example.ext
openssl x509 -req -in example.csr -CA example-ca.pem -CAkey example-ca.key -CAcreateserial \
    -days 3650 -extfile example.ext -out example.pem
# The CA key is not needed again: the script makes a new CA each time.
rm -f example.csr example.ext example-ca.srl example-ca.key
echo "wrote example-ca.pem and example.pem/.key in $(pwd) (TEST-ONLY)"
