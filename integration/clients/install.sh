#!/usr/bin/env bash
# Installs what the real-client integration tests (integration/clients_test.go) need on a
# Debian machine: pika, kombu, celery, stomp.py, paho-mqtt (Debian's python3-* packages, which load in
# /usr/bin/python3), amqp-tools (librabbitmq's command-line tools), mosquitto_pub and mosquitto_sub
# (mosquitto-clients), Node.js + npm if node is missing, and amqplib,
# mqtt (MQTT.js), @stomp/stompjs and ws from integration/clients/node/package-lock.json (npm ci).
#
# Idempotent and quiet: when everything is already there it only checks and returns.
# Usage: integration/clients/install.sh   (as root, or with sudo available)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi

pkgs=()
/usr/bin/python3 -c 'import pika' >/dev/null 2>&1 || pkgs+=(python3-pika)
/usr/bin/python3 -c 'import kombu, amqp' >/dev/null 2>&1 || pkgs+=(python3-kombu)
/usr/bin/python3 -c 'import celery' >/dev/null 2>&1 || pkgs+=(python3-celery)
/usr/bin/python3 -c 'import stomp.utils' >/dev/null 2>&1 || pkgs+=(python3-stomp) # stomp/stomppy_test.go
/usr/bin/python3 -c 'import paho.mqtt.client' >/dev/null 2>&1 || pkgs+=(python3-paho-mqtt) # integration/mqtt_clients_test.go
for t in mosquitto_pub mosquitto_sub; do
  command -v "$t" >/dev/null 2>&1 || { pkgs+=(mosquitto-clients); break; }
done
for t in amqp-publish amqp-consume amqp-declare-queue amqp-get amqp-delete-queue; do
  command -v "$t" >/dev/null 2>&1 || { pkgs+=(amqp-tools); break; }
done
command -v node >/dev/null 2>&1 || pkgs+=(nodejs)
command -v npm >/dev/null 2>&1 || pkgs+=(npm)

if [ ${#pkgs[@]} -gt 0 ]; then
  echo "install.sh: apt-get install ${pkgs[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq >/dev/null
  $sudo apt-get install -y -qq "${pkgs[@]}" >/dev/null
fi

# npm ci only when a package is missing or node_modules is older than the lock file.
node_dir="$here/node"
if [ ! -f "$node_dir/node_modules/amqplib/package.json" ] ||
  [ ! -f "$node_dir/node_modules/mqtt/package.json" ] ||
  [ ! -f "$node_dir/node_modules/@stomp/stompjs/package.json" ] ||
  [ ! -f "$node_dir/node_modules/ws/package.json" ] ||
  [ "$node_dir/package-lock.json" -nt "$node_dir/node_modules/.package-lock.json" ]; then
  echo "install.sh: npm ci in $node_dir"
  (cd "$node_dir" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
fi
