#!/usr/bin/env bash
# Write this GitHub Actions job's OIDC token (audience: $1) to $RUNNER_TEMP/oidc-token and
# point the clouds' web-identity variables at it for the next steps. `tufrepo publish`
# (object_store) exchanges it for short-lived credentials: AWS with AWS_ROLE_ARN
# (AssumeRoleWithWebIdentity), Azure with AZURE_CLIENT_ID + AZURE_TENANT_ID (a federated
# credential). No cloud key is stored anywhere; the token is never printed.
set -euo pipefail
token="$RUNNER_TEMP/oidc-token"
curl --silent --show-error --fail \
  --header "Authorization: bearer $ACTIONS_ID_TOKEN_REQUEST_TOKEN" \
  --get --data-urlencode "audience=$1" "$ACTIONS_ID_TOKEN_REQUEST_URL" |
  python -c 'import json, sys; sys.stdout.write(json.load(sys.stdin)["value"])' >"$token"
chmod 600 "$token"
echo "AWS_WEB_IDENTITY_TOKEN_FILE=$token" >>"$GITHUB_ENV"
echo "AZURE_FEDERATED_TOKEN_FILE=$token" >>"$GITHUB_ENV"
