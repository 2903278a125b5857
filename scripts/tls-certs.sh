#!/usr/bin/env bash
# Makes a local CA and a certificate for the NATS server, signed by it, for TLS
# (README, "TLS"). Keeps what is already there; --force makes everything anew.
#
#   scripts/tls-certs.sh [--force] [DIR]     # DIR defaults to ./tls
#
#   DIR/ca.pem           the CA certificate: clients verify the server with it (NATS_CA)
#   DIR/ca-key.pem       the CA's key: signs server certificates; keep it private
#   DIR/server.pem       the server's certificate, for the names in NATS_TLS_NAMES
#   DIR/server-key.pem   the server's key
#
# NATS_TLS_NAMES: the names clients use to reach the server, comma-separated
# (default: the compose service names, localhost and 127.0.0.1).
# Needs openssl.
set -euo pipefail

force=false
if [ "${1:-}" = "--force" ]; then force=true; shift; fi
dir="${1:-tls}"
names="${NATS_TLS_NAMES:-nats,nats-1,nats-2,nats-3,localhost,127.0.0.1}"
days="${NATS_TLS_DAYS:-825}"

mkdir -p "$dir"
if ! $force && [ -s "$dir/ca.pem" ] && [ -s "$dir/server.pem" ] && [ -s "$dir/server-key.pem" ]; then
    echo "kept the certificates in $dir (--force makes new ones)"
    exit 0
fi

# subjectAltName: IP:... for addresses, DNS:... for names.
san="$(tr ',' '\n' <<<"$names" | awk 'NF { printf "%s%s:%s", sep, ($0 ~ /^[0-9.]+$|:/ ? "IP" : "DNS"), $0; sep="," }')"

umask 077
openssl req -x509 -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:P-256 -days "$days" \
    -subj "/CN=shippy local CA" -keyout "$dir/ca-key.pem" -out "$dir/ca.pem" 2>/dev/null
openssl req -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:P-256 \
    -subj "/CN=nats" -keyout "$dir/server-key.pem" -out "$dir/server.csr" 2>/dev/null
openssl x509 -req -in "$dir/server.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca-key.pem" -CAcreateserial \
    -days "$days" -out "$dir/server.pem" \
    -extfile <(printf 'subjectAltName=%s\nextendedKeyUsage=serverAuth\nkeyUsage=digitalSignature\n' "$san") 2>/dev/null
rm -f "$dir/server.csr" "$dir/ca.srl"
# Certificates are public (every client reads the CA); the keys stay 0600.
chmod 644 "$dir/ca.pem" "$dir/server.pem"
echo "made a CA and a server certificate for $san in $dir"
