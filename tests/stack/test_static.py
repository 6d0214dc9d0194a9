"""Static checks of observability/: every file parses, validates with the real tools,
and names only series, labels and datasources that exist."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from llm_otel import _names
from llm_otel.tools._stack import StackPorts, collector_cache_path, render_prometheus_config
from tests.stack._support import (
    COLLECTOR_DIR,
    DASHBOARDS,
    GRAFANA_DIR,
    OBSERVABILITY,
    PROMETHEUS_DIR,
    REPO,
    SLO_RULES,
    AlertRule,
    DashboardQuery,
    is_known_series,
    iter_panels,
    known_labels,
    label_names,
    load_dashboard,
    metric_names,
    read_slo_alerts,
    render_grafana_expr,
    rule_files,
    slo_expressions,
)

# Collector configurations as they are run: (base, overlay...).
COLLECTOR_CONFIGS = [
    ("config.yaml",),
    ("config.yaml", "file-export.yaml"),
    ("config.yaml", "otlp-tls-bearer.yaml"),
    ("gateway.yaml",),
    ("gateway.yaml", "file-export.yaml"),
    ("agent.yaml",),
    ("agent.yaml", "agent-static.yaml"),
]
K8S_DIR = OBSERVABILITY / "k8s"
COMPONENT_KINDS = ("receivers", "processors", "exporters", "extensions", "connectors")


def run(*command: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(c) for c in command], capture_output=True, text=True, cwd=cwd, check=False)


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


# --------------------------------------------------------------------------- collector


@pytest.mark.stack
@pytest.mark.parametrize("configs", COLLECTOR_CONFIGS, ids="+".join)
def test_collector_config_validates(collector_bin: Path, configs: tuple[str, ...], tmp_path: Path) -> None:
    flags = [f"--config=file:{COLLECTOR_DIR / name}" for name in configs]
    gateways = tmp_path / "gateways.yaml"  # read by agent-static.yaml
    gateways.write_text('["127.0.0.1:14317", "127.0.0.1:24317"]\n')
    result = subprocess.run([str(collector_bin), "validate", *flags], capture_output=True, text=True, check=False,
                            env={**os.environ, "LLM_OTEL_GATEWAYS_FILE": str(gateways)})
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("tier", ["agent", "gateway"])
def test_k8s_collector_tiers_run_the_shipped_configs(tier: str) -> None:
    """The operator CRs embed agent.yaml / gateway.yaml verbatim: what the native tests run is what ships."""
    manifest = load_yaml(K8S_DIR / f"collector-{tier}.yaml")
    assert manifest["spec"]["config"] == load_yaml(COLLECTOR_DIR / f"{tier}.yaml")
    mounts = {mount["mountPath"] for mount in manifest["spec"]["volumeMounts"]}
    assert "/etc/otelcol/tls" in mounts  # the TLS material the configs' defaults point at


def test_agent_protects_its_host_port_and_talks_tls_to_the_gateways() -> None:
    agent = load_yaml(COLLECTOR_DIR / "agent.yaml")
    authenticators = {name for name in agent["extensions"] if name.startswith("bearertokenauth")}
    assert authenticators and authenticators <= set(agent["service"]["extensions"])
    for protocol in agent["receivers"]["otlp"]["protocols"].values():
        assert protocol["tls"]["cert_file"] and protocol["tls"]["key_file"]
        assert protocol["auth"]["authenticator"] in authenticators
    for name in ("load_balancing/traces", "load_balancing/metrics"):
        exporter = agent["exporters"][name]
        tls = exporter["protocol"]["otlp"]["tls"]
        assert not tls.get("insecure") and tls["ca_file"] and tls["cert_file"] and tls["key_file"], name
        # A retry at this level re-sends whole batches to every gateway (duplicate spans).
        assert "retry_on_failure" not in exporter and "sending_queue" not in exporter, name
    assert agent["exporters"]["load_balancing/traces"]["routing_key"] == "traceID"
    assert agent["exporters"]["load_balancing/metrics"]["routing_key"] == "resource"
    gateway = load_yaml(COLLECTOR_DIR / "gateway.yaml")
    gateway_tls = gateway["receivers"]["otlp"]["protocols"]["grpc"]["tls"]
    assert gateway_tls["client_ca_file"] and gateway_tls["cert_file"]  # mutual TLS
    assert set(gateway["receivers"]["otlp"]["protocols"]) == {"grpc"}


def test_gateway_samples_traces_only() -> None:
    gateway = load_yaml(COLLECTOR_DIR / "gateway.yaml")
    pipelines = gateway["service"]["pipelines"]
    assert "tail_sampling" in pipelines["traces"]["processors"]
    assert "tail_sampling" not in pipelines["metrics"]["processors"]  # totals stay exact
    # Same series contract as the single Collector: names and labels do not change when you scale out.
    assert gateway["exporters"]["prometheus"] == load_yaml(COLLECTOR_DIR / "config.yaml")["exporters"]["prometheus"]
    policies = {policy["name"]: policy["type"] for policy in gateway["processors"]["tail_sampling"]["policies"]}
    assert policies == {
        "errors": "status_code", "rate-limited": "string_attribute", "slow": "latency",
        "expensive": "ottl_condition", "low-quality": "ottl_condition", "baseline": "probabilistic",
    }


@pytest.mark.stack
def test_k8s_gateway_config_validates(collector_bin: Path, tmp_path: Path) -> None:
    # The gateway runs the same pipeline as config.yaml, so the local build can validate it.
    gateway = load_yaml(K8S_DIR / "collector-gateway.yaml")
    config = tmp_path / "gateway.yaml"
    config.write_text(yaml.safe_dump(gateway["spec"]["config"]))
    result = run(collector_bin, "validate", f"--config=file:{config}")
    assert result.returncode == 0, result.stderr


def config_component_types() -> dict[str, set[str]]:
    used: dict[str, set[str]] = {kind: set() for kind in COMPONENT_KINDS}
    for path in sorted(COLLECTOR_DIR.glob("*.yaml")):
        if path.name == "builder-config.yaml":
            continue
        config = load_yaml(path)
        for kind in COMPONENT_KINDS:
            used[kind].update(component_id.split("/")[0] for component_id in config.get(kind) or {})
    return used


def manifest_modules() -> dict[str, set[str]]:
    manifest = load_yaml(COLLECTOR_DIR / "builder-config.yaml")
    return {kind: {entry["gomod"] for entry in manifest.get(kind) or []} for kind in COMPONENT_KINDS}


@pytest.mark.stack
def test_builder_manifest_has_exactly_the_components_the_configs_use(collector_bin: Path) -> None:
    built = yaml.safe_load(run(collector_bin, "components").stdout)
    # The binary was built from this manifest...
    for kind in COMPONENT_KINDS:
        assert {c["module"] for c in built.get(kind) or []} == manifest_modules()[kind], kind
    # ...and the manifest holds exactly what the configs reference (no more, no less).
    used = config_component_types()
    for kind in COMPONENT_KINDS:
        assert {c["name"] for c in built.get(kind) or []} == used[kind], kind


def test_manifest_pins_one_release() -> None:
    manifest = load_yaml(COLLECTOR_DIR / "builder-config.yaml")
    version = manifest["dist"]["version"]
    for kind in (*COMPONENT_KINDS, "providers"):
        for entry in manifest.get(kind) or []:
            _module, module_version = entry["gomod"].split()
            if kind == "providers":
                assert module_version.startswith("v1."), entry  # confmap is on the 1.x track
            else:
                assert module_version == f"v{version}", entry


def test_collector_configs_keep_the_series_contract() -> None:
    config = load_yaml(COLLECTOR_DIR / "config.yaml")
    prometheus = config["exporters"]["prometheus"]
    assert "namespace" not in prometheus
    assert prometheus["enable_open_metrics"] is True
    assert prometheus.get("translation_strategy", "UnderscoreEscapingWithSuffixes") == "UnderscoreEscapingWithSuffixes"
    assert "resource_to_telemetry_conversion" not in prometheus
    for pipeline in config["service"]["pipelines"].values():
        assert pipeline["processors"] == ["memory_limiter", "batch"]
    assert "health_check" in config["service"]["extensions"]


def test_build_script_and_package_agree_on_the_cache_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLM_OTEL_CACHE", str(tmp_path / "cache"))
    expected = collector_cache_path(COLLECTOR_DIR / "builder-config.yaml")
    # A placeholder at the computed path: the script must find it and not build.
    expected.parent.mkdir(parents=True)
    expected.write_text("#!/bin/sh\necho otelcol-llm placeholder\n")
    expected.chmod(0o755)
    result = run("bash", REPO / "scripts" / "build-collector.sh", "--print-path")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(expected)


# --------------------------------------------------------------------------- prometheus


@pytest.mark.stack
def test_promtool_check_config(promtool_bin: Path) -> None:
    result = run(promtool_bin, "check", "config", PROMETHEUS_DIR / "prometheus.yml")
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.stack
def test_promtool_check_rendered_native_config(promtool_bin: Path, tmp_path: Path) -> None:
    ports = StackPorts(1001, 1002, 1003, 1004, 1005, 1006)
    rendered = tmp_path / "prometheus.yml"
    rendered.write_text(render_prometheus_config(PROMETHEUS_DIR / "prometheus.yml", ports, scrape_interval="1s"))
    config = load_yaml(rendered)
    targets = {job["job_name"]: job["static_configs"][0]["targets"] for job in config["scrape_configs"]}
    assert targets == {
        "otel-collector": ["127.0.0.1:1003"],
        "otel-collector-internal": ["127.0.0.1:1005"],
        "prometheus": ["127.0.0.1:1006"],
    }
    assert all(Path(rule).is_absolute() for rule in config["rule_files"])
    assert "alerting" not in config
    result = run(promtool_bin, "check", "config", rendered)
    assert result.returncode == 0, result.stdout + result.stderr


def test_prometheus_scrapes_the_collector_with_honor_labels() -> None:
    config = load_yaml(PROMETHEUS_DIR / "prometheus.yml")
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert jobs["otel-collector"]["honor_labels"] is True
    assert jobs["otel-collector"]["static_configs"][0]["targets"] == ["otel-collector:8889"]
    assert config["rule_files"] == ["alerts.yml", "quality.yml", "slo.yml"]
    assert config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] == ["alertmanager:9093"]


@pytest.mark.stack
@pytest.mark.parametrize("rules", rule_files(), ids=lambda p: p.name)
def test_promtool_check_rules(promtool_bin: Path, rules: Path) -> None:
    result = run(promtool_bin, "check", "rules", rules)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.stack
@pytest.mark.slow
@pytest.mark.parametrize("rules", rule_files(), ids=lambda p: p.name)
def test_promtool_test_rules(promtool_bin: Path, rules: Path) -> None:
    """Every rule file has its unit tests beside it: alerts.yml -> alerts_test.yml."""
    result = run(promtool_bin, "test", "rules", f"{rules.stem}_test.yml", cwd=PROMETHEUS_DIR)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_compose_mounts_every_rule_file() -> None:
    prometheus = load_yaml(OBSERVABILITY / "docker-compose.yml")["services"]["prometheus"]
    mounted = {volume.split(":")[1] for volume in prometheus["volumes"]}
    for rules in rule_files():
        assert f"/etc/prometheus/{rules.name}" in mounted, rules.name


@pytest.mark.stack
def test_promtool_checks_and_tests_the_slo_rules(promtool_bin: Path) -> None:
    result = run(promtool_bin, "check", "rules", SLO_RULES)
    assert result.returncode == 0, result.stdout + result.stderr
    result = run(promtool_bin, "test", "rules", "slo_test.yml", cwd=PROMETHEUS_DIR)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_every_slo_alert_fires_and_stays_quiet_in_a_unit_test() -> None:
    tests = load_yaml(PROMETHEUS_DIR / "slo_test.yml")
    fires: set[str] = set()
    silent: set[str] = set()
    for case in tests["tests"]:
        for check in case.get("alert_rule_test", []):
            (fires if check.get("exp_alerts") else silent).add(check["alertname"])
    names = {rule.alert for rule in read_slo_alerts()}
    assert len(names) == 10  # five objectives, a fast and a slow burn each
    assert names - fires == set(), "SLO alerts without a firing test"
    assert names - silent == set(), "SLO alerts without a quiet test"


def test_slo_alerts_are_multiwindow_multi_burn_rate() -> None:
    for rule in read_slo_alerts():
        long_window, short_window, factor = {"Fast": ("1h", "5m", "14.4"), "Slow": ("6h", "30m", "6")}[
            rule.alert[-4:]]
        pattern = (rf"^(\w+):llm_slo_burn_rate:{long_window}\{{slo=\"[\w-]+\"\}} > {re.escape(factor)}\s+and\s+"
                   rf"\1:llm_slo_burn_rate:{short_window}\{{slo=\"[\w-]+\"\}} > {re.escape(factor)}$")
        assert re.match(pattern, rule.expr.strip()), rule.alert
        assert rule.annotations.get("runbook") == "docs/stack.md#slo-alerts", rule.alert


def test_spend_slos_use_increase_never_the_cumulative_sum() -> None:
    for group in load_yaml(SLO_RULES)["groups"]:
        for rule in group["rules"]:
            if "llm_cost_usd_sum" in rule["expr"]:
                assert re.search(r"increase\(llm_cost_usd_sum\[", rule["expr"]), rule.get("record")


def test_k8s_prometheus_rule_is_the_slo_file() -> None:
    manifest = load_yaml(K8S_DIR / "prometheusrule-slo.yaml")
    assert manifest["kind"] == "PrometheusRule"
    assert manifest["spec"]["groups"] == load_yaml(SLO_RULES)["groups"]


def test_every_alert_has_a_firing_and_a_silent_unit_test(alert_rules: list[AlertRule]) -> None:
    fires: set[str] = set()
    silent: set[str] = set()
    for rules in rule_files():
        for case in load_yaml(PROMETHEUS_DIR / f"{rules.stem}_test.yml")["tests"]:
            for check in case.get("alert_rule_test", []):
                (fires if check.get("exp_alerts") else silent).add(check["alertname"])
    names = {rule.alert for rule in alert_rules}
    assert len(names) == len(alert_rules), "duplicate alert names"
    assert names - fires == set(), "alerts without a firing test"
    assert names - silent == set(), "alerts without a not-firing test"


def test_alert_annotations_format_values_for_their_unit(alert_rules: list[AlertRule]) -> None:
    for rule in alert_rules:
        text = " ".join(rule.annotations.values())
        assert rule.annotations.get("summary") and rule.annotations.get("description"), rule.alert
        assert not re.search(r"\{\{\s*\$value\s*\}\}", text), f"{rule.alert}: raw $value, use a humanize function"
        if "$value" not in text:
            continue
        if "_seconds_bucket" in rule.expr:
            assert "humanizeDuration" in text, rule.alert
        elif "llm_cost_usd" in rule.expr:
            assert re.search(r'\$\{\{\s*printf "%\.2f" \$value\s*\}\}', text), rule.alert
        elif "llm_evaluation_score_sum" in rule.expr:  # a mean score on the 0..1 scale, not a share
            assert re.search(r'\{\{\s*printf "%\.2f" \$value\s*\}\}', text), rule.alert
        elif re.search(r"\)\s*/\s*sum", rule.expr):
            assert "humanizePercentage" in text, rule.alert


def test_daily_spend_uses_increase_not_the_cumulative_counter(alert_rules: list[AlertRule]) -> None:
    for rule in alert_rules:
        if "llm_cost_usd_sum" in rule.expr:
            assert re.search(r"(increase|rate)\(llm_cost_usd_sum\[", rule.expr), rule.alert


# --------------------------------------------------------------------------- series names and labels


def promql_sources(dashboard_queries: list[DashboardQuery], alert_rules: list[AlertRule]) -> list[tuple[str, str]]:
    sources = [(f"{q.dashboard}:{q.panel}:{q.ref_id}", q.promql()) for q in dashboard_queries]
    sources += [(f"alerts.yml:{rule.alert}", rule.expr) for rule in alert_rules]
    sources += [(f"slo.yml:{name}", expr) for name, expr in slo_expressions()]
    for path in DASHBOARDS:
        for variable in load_dashboard(path).get("templating", {}).get("list", []):
            query = variable.get("query")
            query = query.get("query", "") if isinstance(query, dict) else str(query or "")
            match = re.fullmatch(r"\s*label_values\((.*),\s*(\w+)\s*\)\s*", query)
            if match:
                sources.append((f"{path.name}:${variable['name']}", render_grafana_expr(match.group(1))))
    datasources = load_yaml(GRAFANA_DIR / "provisioning" / "datasources" / "datasources.yaml")
    for source in datasources["datasources"]:
        for query in source.get("jsonData", {}).get("tracesToMetrics", {}).get("queries", []):
            # Grafana fills $__tags with matchers from the span; $$ is a literal $ in provisioning.
            sources.append((f"datasource:{source['name']}:{query['name']}", query["query"].replace("$$__tags", "")))
    return sources


def test_queries_use_only_series_the_collector_produces(
    dashboard_queries: list[DashboardQuery], alert_rules: list[AlertRule]
) -> None:
    unknown = {
        (where, name)
        for where, expr in promql_sources(dashboard_queries, alert_rules)
        for name in metric_names(expr)
        if not is_known_series(name)
    }
    assert unknown == set(), f"series not in llm_otel/_names.py: {sorted(unknown)}"


def test_queries_use_only_known_labels(dashboard_queries: list[DashboardQuery], alert_rules: list[AlertRule]) -> None:
    allowed = known_labels()
    unknown = {
        (where, label)
        for where, expr in promql_sources(dashboard_queries, alert_rules)
        for label in label_names(expr)
        if label not in allowed
    }
    assert unknown == set()


def test_every_instrument_is_on_the_dashboard(dashboard_queries: list[DashboardQuery]) -> None:
    used = set().union(*(metric_names(q.promql()) for q in dashboard_queries))
    for instrument in _names.INSTRUMENTS:
        assert any(name.startswith(instrument.prometheus) for name in used), instrument.name


def test_histogram_quantiles_aggregate_by_le(
    dashboard_queries: list[DashboardQuery], alert_rules: list[AlertRule]
) -> None:
    for where, expr in promql_sources(dashboard_queries, alert_rules):
        for match in re.finditer(r"histogram_quantile\(", expr):
            rest = expr[match.end():]
            assert re.match(r"\s*[\d.]+,\s*sum by \(le\b", rest), where


def test_metric_name_extraction_sees_through_promql() -> None:
    expr = 'histogram_quantile(0.99, sum by (le, x) (rate(a_bucket{job=~"$job"}[5m]))) > 2e6 or vector(0) + b offset 30m'
    assert metric_names(render_grafana_expr(expr)) == {"a_bucket", "b"}
    assert label_names(expr) == {"le", "x", "job"}


# --------------------------------------------------------------------------- grafana


def datasource_uids() -> set[str]:
    config = load_yaml(GRAFANA_DIR / "provisioning" / "datasources" / "datasources.yaml")
    return {source["uid"] for source in config["datasources"]}


def collect_datasource_refs(node: Any) -> list[str]:
    refs = []
    if isinstance(node, dict):
        source = node.get("datasource")
        if isinstance(source, dict) and source.get("uid"):
            refs.append(str(source["uid"]))
        elif isinstance(source, str):
            refs.append(source)
        for value in node.values():
            refs.extend(collect_datasource_refs(value))
    elif isinstance(node, list):
        for value in node:
            refs.extend(collect_datasource_refs(value))
    return refs


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_dashboard_datasource_uids_exist(path: Path) -> None:
    refs = {ref for ref in collect_datasource_refs(load_dashboard(path)) if ref != "-- Grafana --"}
    assert refs, "panels should name their datasource by uid"
    assert refs <= datasource_uids()


def test_datasources_link_exemplars_and_traces() -> None:
    config = load_yaml(GRAFANA_DIR / "provisioning" / "datasources" / "datasources.yaml")
    by_type = {source["type"]: source for source in config["datasources"]}
    prometheus, tempo = by_type["prometheus"], by_type["tempo"]
    assert prometheus["jsonData"]["exemplarTraceIdDestinations"] == [
        {"name": "trace_id", "datasourceUid": tempo["uid"]}
    ]
    assert tempo["jsonData"]["tracesToMetrics"]["datasourceUid"] == prometheus["uid"]


def test_dashboard_provider_points_at_the_mounted_folder() -> None:
    provider = load_yaml(GRAFANA_DIR / "provisioning" / "dashboards" / "dashboards.yaml")["providers"][0]
    compose = load_yaml(OBSERVABILITY / "docker-compose.yml")
    mounts = dict(volume.split(":")[:2] for volume in compose["services"]["grafana"]["volumes"] if volume.startswith("./"))
    assert mounts["./grafana/dashboards"] == provider["options"]["path"]


def test_dashboard_expressions_render_to_plain_promql(dashboard_queries: list[DashboardQuery]) -> None:
    assert dashboard_queries
    for query in dashboard_queries:
        promql = query.promql()
        assert "$" not in promql and "[[" not in promql, query
        for opening, closing in ("()", "[]", "{}"):
            assert promql.count(opening) == promql.count(closing), query
        assert promql.count('"') % 2 == 0, query


def test_dashboard_panels_have_units_and_truthful_legends(dashboard_queries: list[DashboardQuery]) -> None:
    for path in DASHBOARDS:
        for panel in iter_panels(load_dashboard(path)["panels"]):
            if panel["type"] != "row":
                assert panel["fieldConfig"]["defaults"].get("unit"), panel["title"]
    for query in dashboard_queries:
        expr, text = query.expr.strip(), f"{query.panel} {query.legend}".lower()
        if "llm_cost_usd_sum" in expr:
            assert query.unit == "currencyUSD", query
        if re.search(r"histogram_quantile\(.*_seconds_bucket", expr):
            assert query.unit == "s", query
        if "rate(" not in expr or "histogram_quantile" in expr or query.unit == "percentunit":
            continue
        if expr.endswith("* 3600"):
            assert "hour" in text, query
        elif expr.endswith("* 60"):
            assert "/min" in text or "per minute" in text, query
        elif query.unit != "reqps" and "llm_cost_usd_count" not in expr and "llm_evaluation_score_count" not in expr:
            # (a rate divided by a rate of counts is a mean per observation, not a per-second figure)
            assert "/s" in text or "per second" in text, query


# --------------------------------------------------------------------------- compose, tempo, alertmanager, k8s


def test_compose_mounts_existing_files_and_binds_localhost() -> None:
    compose = load_yaml(OBSERVABILITY / "docker-compose.yml")
    declared_volumes = set(compose.get("volumes") or {})
    for name, service in compose["services"].items():
        image = service["image"]
        assert re.search(r":v?\d+\.\d+\.\d+$", image), f"{name}: image not pinned: {image}"
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith((".", "/")):
                assert (OBSERVABILITY / source).exists(), f"{name} mounts missing {source}"
            else:
                assert source in declared_volumes, f"{name}: undeclared volume {source}"
        for port in service.get("ports", []):
            assert str(port).startswith("${LLM_OTEL_BIND:-127.0.0.1}:"), f"{name}: {port}"
    manifest = load_yaml(COLLECTOR_DIR / "builder-config.yaml")
    assert compose["services"]["otel-collector"]["image"].endswith(":" + manifest["dist"]["version"])
    assert {"prometheus-data", "tempo-data"} <= declared_volumes
    password = compose["services"]["grafana"]["environment"]["GF_SECURITY_ADMIN_PASSWORD"]
    assert password.startswith("${GF_SECURITY_ADMIN_PASSWORD:?"), "Grafana must not have a default password"
    prometheus_command = " ".join(compose["services"]["prometheus"]["command"])
    assert "--enable-feature=exemplar-storage" in prometheus_command


def test_tempo_and_alertmanager_configs_parse() -> None:
    tempo = load_yaml(OBSERVABILITY / "tempo" / "tempo.yaml")
    assert tempo["storage"]["trace"]["backend"] == "local"
    assert "otlp" in tempo["distributor"]["receivers"]
    alertmanager_yml = OBSERVABILITY / "alertmanager" / "alertmanager.yml"
    alertmanager = load_yaml(alertmanager_yml)
    receivers = {receiver["name"]: receiver for receiver in alertmanager["receivers"]}
    assert receivers[alertmanager["route"]["receiver"]]["webhook_configs"][0]["url"].startswith("http")
    amtool = shutil.which("amtool")  # optional (Debian: prometheus-alertmanager); a deeper check when present
    if amtool:
        result = run(amtool, "check-config", alertmanager_yml)
        assert result.returncode == 0, result.stdout + result.stderr


def test_k8s_manifests_parse() -> None:
    documents = [
        document
        for path in sorted(K8S_DIR.glob("*.yaml"))
        for document in yaml.safe_load_all(path.read_text())
        if document
    ]
    collectors = {doc["metadata"]["name"]: doc for doc in documents if doc["kind"] == "OpenTelemetryCollector"}
    assert all(doc["apiVersion"] == "opentelemetry.io/v1beta1" for doc in collectors.values())
    modes = {doc["spec"]["mode"] for doc in collectors.values()}
    assert modes == {"daemonset", "deployment"}
    gateway = next(doc for doc in collectors.values() if doc["spec"]["mode"] == "deployment")
    assert gateway["spec"]["autoscaler"]["maxReplicas"] > gateway["spec"]["autoscaler"]["minReplicas"]
    agent = next(doc for doc in collectors.values() if doc["spec"]["mode"] == "daemonset")
    exporters = agent["spec"]["config"]["exporters"]
    assert exporters["load_balancing/traces"]["routing_key"] == "traceID"
    monitors = [doc for doc in documents if doc["kind"] == "ServiceMonitor"]
    assert monitors and all(doc["apiVersion"] == "monitoring.coreos.com/v1" for doc in monitors)
    assert any(endpoint.get("honorLabels") for doc in monitors for endpoint in doc["spec"]["endpoints"])
    image_tag = load_yaml(COLLECTOR_DIR / "builder-config.yaml")["dist"]["version"]
    assert all(doc["spec"]["image"].endswith(":" + image_tag) for doc in collectors.values())


def test_render_promql_substitution_rule(render_promql: Callable[..., str]) -> None:
    expr = 'sum(increase(x{a=~"$model", b=~"${provider:regex}", c=~"[[job]]"}[$__range])) / rate(y[$__rate_interval])'
    assert render_promql(expr, rate_interval="2m", range_="6h") == (
        'sum(increase(x{a=~".*", b=~".*", c=~".*"}[6h])) / rate(y[2m])'
    )
