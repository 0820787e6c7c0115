#!/usr/bin/env bash
# Create the dynamic-security file of a telecare broker, with the backend's own account.
#
#   dynsec-init.sh FILE USERNAME [PASSWORD]     (password from $TELECARE_BROKER_PASSWORD,
#                                                else generated and printed on stdout)
#
# `mosquitto_ctrl dynsec init` makes FILE with USERNAME in role `admin` (may use the control
# topic and read every topic). Then this script gives that role what the backend also does:
# publish acks to devices (telecare/v1/+/ack), and changes one default: clients receive only
# what a role allows (publishClientReceive false), so a device reads its own acks and nothing
# else. Device clients and their roles are created by the backend through the control topic.
set -euo pipefail

if [[ $# -lt 2 || $# -gt 3 ]]; then
    echo "usage: $0 FILE USERNAME [PASSWORD]" >&2
    exit 2
fi
file=$1
username=$2
password=${3:-${TELECARE_BROKER_PASSWORD:-}}
generated=false
if [[ -z "$password" ]]; then
    password=$(python3 -c 'import secrets; print(secrets.token_urlsafe(24))')
    generated=true
fi
if [[ -e "$file" ]]; then
    echo "$file exists already: not overwriting a broker's clients" >&2
    exit 1
fi

mosquitto_ctrl dynsec init "$file" "$username" "$password" >/dev/null
python3 - "$file" <<'PY'
import json
import sys

path = sys.argv[1]
with open(path, encoding="utf-8") as f:
    config = json.load(f)
[admin] = [role for role in config["roles"] if role["rolename"] == "admin"]
admin["acls"].append(
    {"acltype": "publishClientSend", "topic": "telecare/v1/+/ack", "allow": True}
)
config["defaultACLAccess"]["publishClientReceive"] = False
with open(path, "w", encoding="utf-8") as f:
    json.dump(config, f, indent="\t")
PY
chmod 600 "$file"
if $generated; then
    echo "$password"
fi
