#!/usr/bin/env bash
# Renders helm/tandem with one of the test value sets and validates what comes out: Kubernetes schemas and
# the chart's own consistency rules (check_manifests.py), the TANDEM_* names against the binaries' flags,
# and the release notes.
#   check_chart.sh HELM_RENDER default|production|minimal
# The rendered manifests are kept in $TANDEM_BIN_DIR/../deploy/chart-<values>.yaml for a look.
set -euo pipefail
render="$1"; values="$2"
source_dir="${TANDEM_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}"
bin_dir="${TANDEM_BIN_DIR:-$source_dir/build/bin}"
out_dir="$bin_dir/../deploy"
mkdir -p "$out_dir"
out="$out_dir/chart-$values.yaml"

render_args=(--release-name tandem --namespace inference --kube-version 1.29.0)
check_args=(--bin-dir "$bin_dir")
case "$values" in
  default)
    kinds=Deployment,Service,HorizontalPodAutoscaler,PodDisruptionBudget,NetworkPolicy,ConfigMap,ServiceAccount
    check_args+=(--external-secret tandem-curve) ;;
  production)
    render_args+=(--values "$source_dir/tests/deploy/values-production.yaml" --api-versions monitoring.coreos.com/v1)
    kinds=Deployment,Service,HorizontalPodAutoscaler,PodDisruptionBudget,NetworkPolicy,ConfigMap,ServiceAccount,Secret,ServiceMonitor,PrometheusRule
    check_args+=(--external-secret tandem-control) ;;
  minimal)
    render_args+=(--values "$source_dir/tests/deploy/values-minimal.yaml")
    kinds=Deployment,Service,ConfigMap
    check_args+=(--external-secret tandem-curve) ;;
  *) echo "usage: $0 HELM_RENDER default|production|minimal" >&2; exit 2 ;;
esac

"$render" "${render_args[@]}" "$source_dir/helm/tandem" > "$out"
echo "rendered $(grep -c '^kind:' "$out") objects into $out"
/usr/bin/python3 "$source_dir/deploy/tools/check_manifests.py" --expect-kinds "$kinds" "${check_args[@]}" "$out"

notes="$("$render" "${render_args[@]}" --show-notes "$source_dir/helm/tandem" | sed -n '/NOTES/,$p')"
grep -q "tcp://tandem-cloud.inference.svc:5555" <<<"$notes" || { echo "NOTES lack the tails' address:"; echo "$notes"; exit 1; }
if [ "$values" = default ]; then
  grep -q "WARNING: keys.allowedClients is empty" <<<"$notes" || { echo "NOTES lack the allow-list warning"; exit 1; }
fi
echo "notes: ok"
