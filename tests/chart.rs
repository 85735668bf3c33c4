//! The Helm chart, checked with real tools: `helm lint` and `helm template`
//! for each certificate mode and optional feature, `kubernetes-validate
//! --strict` against Kubernetes 1.30 and 1.34, and assertions on the rendered
//! objects (webhook exclusions, RBAC, paths, certificates, probes, security
//! context, the policies ConfigMaps). The tools are installed by tests/run.sh.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use base64::Engine as _;
use common::repo_path;
use serde::Deserialize;
use serde_json::{json, Value};

const NS: &str = "regent-system";
const RELEASE: &str = "r";
const FULLNAME: &str = "r-regent";
const CHART: &str = "charts/regent";

fn tool(env: &str, default: &str) -> PathBuf {
    let path = std::env::var(env)
        .map(PathBuf::from)
        .unwrap_or_else(|_| repo_path(default));
    assert!(
        path.exists(),
        "{} not found; run tests/run.sh, which installs it",
        path.display()
    );
    path
}

fn helm() -> PathBuf {
    tool("REGENT_HELM", "target/test-tools/bin/helm")
}

fn validator() -> PathBuf {
    tool(
        "REGENT_KUBERNETES_VALIDATE",
        "target/test-tools/venv/bin/kubernetes-validate",
    )
}

/// `helm template` with extra arguments: the text, or helm's error.
fn template(args: &[&str]) -> Result<String, String> {
    let out = Command::new(helm())
        .current_dir(repo_path(""))
        .args(["template", RELEASE, CHART, "-n", NS])
        .args(args)
        .output()
        .unwrap();
    if out.status.success() {
        Ok(String::from_utf8(out.stdout).unwrap())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

fn docs(text: &str) -> Vec<Value> {
    serde_yaml_ng::Deserializer::from_str(text)
        .map(|d| Value::deserialize(d).unwrap())
        .filter(|v| !v.is_null())
        .collect()
}

fn render(args: &[&str]) -> Vec<Value> {
    docs(&template(args).unwrap_or_else(|e| panic!("helm template {args:?} failed: {e}")))
}

fn find<'a>(objs: &'a [Value], kind: &str, name: &str) -> &'a Value {
    objs.iter()
        .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name}"))
}

fn kinds(objs: &[Value]) -> Vec<String> {
    objs.iter()
        .map(|o| o["kind"].as_str().unwrap().to_string())
        .collect()
}

/// Every combination the chart documents, as `helm template` arguments.
fn combinations() -> Vec<(&'static str, Vec<&'static str>)> {
    let features = [
        "--set",
        "monitoring.serviceMonitor.enabled=true",
        "--set",
        "monitoring.prometheusRule.enabled=true",
        "--set",
        "networkPolicy.enabled=true",
    ];
    let mut out = Vec::new();
    for (mode, extra) in [
        ("selfSigned", vec![]),
        ("certManager", vec![]),
        (
            "certManager",
            vec![
                "--set",
                "certs.certManager.issuerRef.name=corp-ca",
                "--set",
                "certs.certManager.issuerRef.kind=ClusterIssuer",
            ],
        ),
        (
            "existingSecret",
            vec![
                "--set",
                "certs.existingSecret=regent-tls",
                "--set-string",
                "certs.caBundle=LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCg==",
            ],
        ),
    ] {
        let mut base = vec!["--set"];
        base.push(match mode {
            "selfSigned" => "certs.mode=selfSigned",
            "certManager" => "certs.mode=certManager",
            _ => "certs.mode=existingSecret",
        });
        base.extend(extra);
        out.push((mode, base.clone()));
        let mut on = base;
        on.extend(features);
        out.push((mode, on));
    }
    out.push((
        "selfSigned",
        vec![
            "--set-json",
            r#"gatekeeper.inventory=[{"group":"","version":"v1","kind":"Namespace","resource":"namespaces"},{"group":"networking.k8s.io","version":"v1","kind":"Ingress","resource":"ingresses","fields":["spec.rules","metadata.labels"]}]"#,
            "--set-json",
            r#"gatekeeper.extraRules=[{"apiGroups":["networking.k8s.io"],"apiVersions":["v1"],"resources":["ingresses"],"operations":["CREATE","UPDATE"],"scope":"Namespaced"}]"#,
            "--set-json",
            r#"gatekeeper.extraMutatingRules=[{"apiGroups":["networking.k8s.io"],"apiVersions":["v1"],"resources":["ingresses"],"operations":["CREATE","UPDATE"],"scope":"Namespaced"}]"#,
        ],
    ));
    out.push((
        "selfSigned",
        vec![
            "--set",
            "audit.enabled=true",
            "--set",
            "audit.installCRDs=true",
            "--set",
            "audit.replicas=2",
            "--set",
            "monitoring.serviceMonitor.enabled=true",
            "--set",
            "grafana.dashboard.enabled=true",
        ],
    ));
    out.push((
        "selfSigned",
        vec![
            "--set",
            "audit.enabled=true",
            "--set",
            "audit.installCRDs=true",
            "--set",
            "audit.reportFormat=openreports",
            "--set",
            "audit.reportResults=all",
        ],
    ));
    out.push(("selfSigned", vec!["--set", "exceptions.enabled=false"]));
    out.push((
        "selfSigned",
        vec![
            "--set-json",
            r#"decisionLog.sinks=["stdout","file:/var/log/regent/decisions.log","https://logs.example.com/regent"]"#,
            "--set",
            "decisionLog.http.token=s3cret",
            "--set",
            "decisionLog.http.caConfigMap=logs-ca",
            "--set",
            "decisionLog.includeObject=true",
            "--set-string",
            "decisionLog.allowed=0.01",
            "--set-json",
            r#"decisionLog.mask=["/spec/template/spec/containers/*/env/*/value"]"#,
            "--set",
            "networkPolicy.enabled=true",
            "--set",
            "networkPolicy.restrictEgress=true",
            "--set-json",
            r#"decisionLog.egress=[{"to":[{"ipBlock":{"cidr":"10.0.40.0/24"}}],"ports":[{"port":443,"protocol":"TCP"}]}]"#,
        ],
    ));
    out.push((
        "selfSigned",
        vec![
            "--set",
            "exceptions.aggregateToEdit=true",
            "--set",
            "exceptions.aggregateToView=false",
            "--set",
            "exceptions.installCRD=false",
            "--set-string",
            "exceptions.helpText=Ask #platform-security: https://wiki.example/exceptions",
            "--set",
            "exceptions.adminNamespace=security",
            "--set",
            "audit.enabled=true",
        ],
    ));
    out.push((
        "selfSigned",
        vec![
            "--set",
            "clientAuth.enabled=true",
            "--set",
            "clientAuth.caConfigMap=apiserver-client-ca",
            "--set",
            "clientAuth.commonName=kube-apiserver-webhook-client",
        ],
    ));
    out.push((
        "existingSecret",
        vec![
            "--set",
            "certs.mode=existingSecret",
            "--set",
            "certs.existingSecret=regent-tls",
            "--set-string",
            "certs.caBundle=LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCg==",
            "--set",
            "clientAuth.enabled=true",
            "--set",
            "clientAuth.caSecret=apiserver-client-ca",
        ],
    ));
    out.push((
        "selfSigned",
        vec![
            "--set",
            "policies.default.enabled=false",
            "--set",
            "pdb.enabled=false",
            "--set",
            "topologySpread.enabled=false",
            "--set",
            "priorityClassName=",
        ],
    ));
    out
}

#[test]
fn helm_lint_passes_for_every_mode() {
    for (mode, args) in combinations() {
        let out = Command::new(helm())
            .current_dir(repo_path(""))
            .args(["lint", CHART, "--strict"])
            .args(&args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "helm lint ({mode}, {args:?}): {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn every_rendering_passes_strict_schemas_for_1_30_and_1_34() {
    let dir = tempfile::tempdir().unwrap();
    for (i, (mode, args)) in combinations().into_iter().enumerate() {
        let text = template(&args).unwrap();
        let file = dir.path().join(format!("render-{i}.yaml"));
        std::fs::write(&file, &text).unwrap();
        for version in ["1.30.0", "1.34.0"] {
            let out = Command::new(validator())
                .args(["-k", version, "--strict"])
                .arg(&file)
                .output()
                .unwrap();
            let report = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(
                out.status.success() && !report.contains("ERROR"),
                "{mode} {args:?} against {version}:\n{report}"
            );
            // Only the CRD kinds (checked below) may be skipped.
            for line in report
                .lines()
                .filter(|l| l.contains("Couldn't find schema"))
            {
                assert!(
                    ["Certificate", "Issuer", "ServiceMonitor", "PrometheusRule"]
                        .iter()
                        .any(|k| line.contains(&format!("kind {k} "))),
                    "unexpected skip: {line}"
                );
            }
        }
        for obj in docs(&text) {
            check_crd_structure(&obj);
        }
    }
}

/// The CRD objects the schema validator cannot check, checked by hand
/// against the fields their CRDs (cert-manager v1, prometheus-operator v1) define.
fn check_crd_structure(obj: &Value) {
    let allowed = |v: &Value, keys: &[&str], what: &str| {
        for k in v
            .as_object()
            .unwrap_or_else(|| panic!("{what} is not an object"))
            .keys()
        {
            assert!(keys.contains(&k.as_str()), "{what}: unexpected field {k}");
        }
    };
    let spec = &obj["spec"];
    match obj["kind"].as_str().unwrap() {
        "Certificate" => {
            assert_eq!(obj["apiVersion"], "cert-manager.io/v1");
            allowed(
                spec,
                &[
                    "secretName",
                    "duration",
                    "renewBefore",
                    "dnsNames",
                    "privateKey",
                    "usages",
                    "issuerRef",
                    "isCA",
                    "commonName",
                ],
                "Certificate.spec",
            );
            assert!(spec["secretName"].is_string());
            assert!(spec["issuerRef"]["name"].is_string());
            allowed(&spec["issuerRef"], &["name", "kind", "group"], "issuerRef");
            assert!(
                spec["dnsNames"].as_array().is_some_and(|d| !d.is_empty()) || spec["isCA"] == true
            );
            allowed(
                &spec["privateKey"],
                &["algorithm", "size", "rotationPolicy"],
                "privateKey",
            );
        }
        "Issuer" => {
            assert_eq!(obj["apiVersion"], "cert-manager.io/v1");
            let keys: Vec<&String> = spec.as_object().unwrap().keys().collect();
            assert_eq!(
                keys.len(),
                1,
                "an Issuer has exactly one issuer type: {keys:?}"
            );
            assert!(["selfSigned", "ca"].contains(&keys[0].as_str()));
            if spec["ca"].is_object() {
                assert!(spec["ca"]["secretName"].is_string());
            }
        }
        "ServiceMonitor" => {
            assert_eq!(obj["apiVersion"], "monitoring.coreos.com/v1");
            allowed(
                spec,
                &["selector", "namespaceSelector", "endpoints"],
                "ServiceMonitor.spec",
            );
            for e in spec["endpoints"].as_array().unwrap() {
                allowed(e, &["port", "path", "interval"], "endpoint");
            }
        }
        "PrometheusRule" => {
            assert_eq!(obj["apiVersion"], "monitoring.coreos.com/v1");
            for g in spec["groups"].as_array().unwrap() {
                allowed(g, &["name", "rules"], "group");
                for r in g["rules"].as_array().unwrap() {
                    allowed(
                        r,
                        &["alert", "expr", "for", "labels", "annotations"],
                        "rule",
                    );
                    assert!(r["alert"].is_string() && r["expr"].is_string());
                }
            }
        }
        _ => {}
    }
}

#[test]
fn both_webhooks_exclude_system_release_and_opted_out_namespaces() {
    for (mode, args) in combinations() {
        let objs = render(&args);
        for (kind, name, path) in [
            (
                "ValidatingWebhookConfiguration",
                "validate.regent.dev",
                regent::serve::admission::VALIDATE_PATH,
            ),
            (
                "MutatingWebhookConfiguration",
                "mutate.regent.dev",
                regent::serve::admission::MUTATE_PATH,
            ),
        ] {
            let cfg = find(&objs, kind, FULLNAME);
            // The object webhook; PolicyExceptions have their own
            // (checked in exceptions_install_a_crd_a_webhook_rule_and_roles).
            let hooks = cfg["webhooks"].as_array().unwrap();
            let w = &hooks[0];
            assert_eq!(w["name"], name);
            let exprs = w["namespaceSelector"]["matchExpressions"]
                .as_array()
                .unwrap();
            let by_name = exprs
                .iter()
                .find(|e| e["key"] == "kubernetes.io/metadata.name")
                .unwrap();
            assert_eq!(by_name["operator"], "NotIn");
            for ns in ["kube-system", "kube-node-lease", NS] {
                assert!(
                    by_name["values"].as_array().unwrap().contains(&json!(ns)),
                    "{mode} {kind}: {ns} not excluded"
                );
            }
            let ignore = exprs
                .iter()
                .find(|e| e["key"] == "regent.dev/ignore")
                .unwrap();
            assert_eq!(ignore["operator"], "NotIn");
            assert_eq!(ignore["values"], json!(["true"]));
            assert_eq!(w["admissionReviewVersions"], json!(["v1"]));
            assert_eq!(w["sideEffects"], "None");
            assert_eq!(w["matchPolicy"], "Equivalent");
            assert_eq!(w["failurePolicy"], "Ignore");
            assert!(w["timeoutSeconds"].as_u64().unwrap() < 10);
            // The service path is the server's route, on the Service's port.
            let svc = &w["clientConfig"]["service"];
            assert_eq!(svc["path"], path);
            assert_eq!(svc["name"], FULLNAME);
            assert_eq!(svc["namespace"], NS);
            let service = find(&objs, "Service", FULLNAME);
            let port = service["spec"]["ports"]
                .as_array()
                .unwrap()
                .iter()
                .find(|p| p["port"] == svc["port"])
                .unwrap();
            assert_eq!(port["targetPort"], "webhook");
            let rules: BTreeMap<String, Vec<String>> = w["rules"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| {
                    assert_eq!(r["operations"], json!(["CREATE", "UPDATE"]));
                    let resources = r["resources"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|x| x.as_str().unwrap().to_string())
                        .collect();
                    (r["apiGroups"][0].as_str().unwrap().to_string(), resources)
                })
                .collect();
            assert_eq!(rules[""], ["pods", "replicationcontrollers"]);
            assert_eq!(
                rules["apps"],
                ["deployments", "replicasets", "statefulsets", "daemonsets"]
            );
            assert_eq!(rules["batch"], ["jobs", "cronjobs"]);
            if kind == "MutatingWebhookConfiguration" {
                assert_eq!(w["reinvocationPolicy"], "IfNeeded");
            }
        }
    }
}

/// `gatekeeper.extraRules` reach the validating webhook only,
/// `gatekeeper.extraMutatingRules` the mutating one only.
#[test]
fn extra_rules_go_to_the_webhook_they_are_for() {
    let objs = render(&[
        "--set-json",
        r#"gatekeeper.extraRules=[{"apiGroups":["networking.k8s.io"],"apiVersions":["v1"],"resources":["ingresses"],"operations":["CREATE"],"scope":"Namespaced"}]"#,
        "--set-json",
        r#"gatekeeper.extraMutatingRules=[{"apiGroups":[""],"apiVersions":["v1"],"resources":["services"],"operations":["CREATE"],"scope":"Namespaced"}]"#,
    ]);
    let resources = |kind: &str| -> Vec<String> {
        find(&objs, kind, FULLNAME)["webhooks"][0]["rules"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|r| r["resources"].as_array().unwrap().clone())
            .map(|r| r.as_str().unwrap().to_string())
            .collect()
    };
    let validating = resources("ValidatingWebhookConfiguration");
    let mutating = resources("MutatingWebhookConfiguration");
    assert!(validating.contains(&"ingresses".to_string()));
    assert!(!validating.contains(&"services".to_string()));
    assert!(mutating.contains(&"services".to_string()));
    assert!(!mutating.contains(&"ingresses".to_string()));
}

#[test]
fn rbac_is_namespaced_and_minimal() {
    for (mode, args) in combinations() {
        let objs = render(&args);
        // The exceptions' own cluster roles are checked apart
        // (`exceptions_install_a_crd_a_webhook_rule_and_roles`).
        let exception_role = |o: &Value| {
            let name = o["metadata"]["name"].as_str().unwrap_or("");
            name == format!("{FULLNAME}-exceptions") || name.starts_with("regent-exception-")
        };
        let rest: Vec<Value> = objs
            .iter()
            .filter(|o| !exception_role(o))
            .cloned()
            .collect();
        let k = kinds(&rest);
        if args.iter().any(|a| a.starts_with("gatekeeper.inventory")) {
            // Only the inventory is cluster-wide, and only list/watch.
            let role = find(&objs, "ClusterRole", &format!("{FULLNAME}-inventory"));
            assert_eq!(
                role["rules"],
                json!([
                    {"apiGroups": [""], "resources": ["namespaces"], "verbs": ["list", "watch"]},
                    {"apiGroups": ["networking.k8s.io"], "resources": ["ingresses"], "verbs": ["list", "watch"]}
                ])
            );
            let binding = find(
                &objs,
                "ClusterRoleBinding",
                &format!("{FULLNAME}-inventory"),
            );
            assert_eq!(binding["subjects"][0]["name"], FULLNAME);
            let deploy = find(&objs, "Deployment", FULLNAME);
            let args = deploy["spec"]["template"]["spec"]["containers"][0]["args"].to_string();
            assert!(
                args.contains(
                    "--inventory=v1/Namespace=namespaces,networking.k8s.io/v1/Ingress=ingresses"
                ) && args.contains(
                    "--inventory-fields=networking.k8s.io/v1/Ingress=spec.rules:metadata.labels"
                ),
                "{args}"
            );
            let validating = find(&objs, "ValidatingWebhookConfiguration", FULLNAME);
            let rules = validating["webhooks"][0]["rules"].as_array().unwrap();
            assert!(rules.iter().any(|r| r["resources"] == json!(["ingresses"])));
            let mutating = find(&objs, "MutatingWebhookConfiguration", FULLNAME);
            let rules = mutating["webhooks"][0]["rules"].as_array().unwrap();
            assert_eq!(rules.len(), 4);
            assert!(rules.iter().any(|r| r["resources"] == json!(["ingresses"])));
        } else if args.iter().any(|a| a.starts_with("audit.enabled=true")) {
            // Only the audit is cluster-wide: list/watch of the audited
            // kinds, and the reports.
            let role = find(&objs, "ClusterRole", &format!("{FULLNAME}-audit"));
            let rules = role["rules"].as_array().unwrap();
            let (reads, writes): (Vec<&Value>, Vec<&Value>) = rules
                .iter()
                .partition(|r| r["verbs"] == json!(["list", "watch"]));
            // The audited kinds, and the policy exceptions it honours.
            assert_eq!(
                reads
                    .iter()
                    .filter(|r| r["apiGroups"][0] != "regent.dev")
                    .count(),
                8,
                "{rules:?}"
            );
            assert!(reads.iter().any(|r| r["resources"] == json!(["pods"])));
            assert_eq!(writes.len(), 1, "{rules:?}");
            assert!(["wgpolicyk8s.io", "openreports.io"]
                .contains(&writes[0]["apiGroups"][0].as_str().unwrap()));
            assert_eq!(
                k.iter().filter(|k| *k == "ClusterRole").count(),
                1,
                "{mode}: cluster-wide RBAC beyond the audit's"
            );
        } else {
            assert!(
                !k.iter()
                    .any(|k| k == "ClusterRole" || k == "ClusterRoleBinding"),
                "{mode}: cluster-wide RBAC"
            );
        }
        let role = find(&objs, "Role", FULLNAME);
        assert_eq!(role["metadata"]["namespace"], NS);
        assert_eq!(
            role["rules"],
            json!([
                {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list", "watch", "patch"]},
                {"apiGroups": ["events.k8s.io"], "resources": ["events"], "verbs": ["create", "patch"]}
            ])
        );
        let binding = find(&objs, "RoleBinding", FULLNAME);
        assert_eq!(binding["subjects"][0]["name"], FULLNAME);
    }
}

#[test]
fn deployment_has_probes_restricted_security_and_limits() {
    let objs = render(&[]);
    let d = find(&objs, "Deployment", FULLNAME);
    assert_eq!(d["spec"]["replicas"], 3);
    let pod = &d["spec"]["template"]["spec"];
    assert_eq!(pod["priorityClassName"], "system-cluster-critical");
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(
        pod["securityContext"]["seccompProfile"]["type"],
        "RuntimeDefault"
    );
    let keys: Vec<&str> = pod["topologySpreadConstraints"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["topologyKey"].as_str().unwrap())
        .collect();
    assert_eq!(
        keys,
        ["kubernetes.io/hostname", "topology.kubernetes.io/zone"]
    );
    let c = &pod["containers"][0];
    let sc = &c["securityContext"];
    assert_eq!(sc["allowPrivilegeEscalation"], false);
    assert_eq!(sc["readOnlyRootFilesystem"], true);
    assert_eq!(sc["capabilities"]["drop"], json!(["ALL"]));
    assert_eq!(
        c["readinessProbe"]["httpGet"],
        json!({"path": "/readyz", "port": "admin"})
    );
    assert_eq!(
        c["livenessProbe"]["httpGet"],
        json!({"path": "/healthz", "port": "admin"})
    );
    assert!(c["resources"]["limits"]["memory"].is_string());
    assert!(c["resources"]["requests"]["memory"].is_string());
    let ports: BTreeMap<&str, u64> = c["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap(),
                p["containerPort"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(ports["admin"], 8080);
    assert_eq!(ports["webhook"], 8443);
    let args: Vec<&str> = c["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert!(args.contains(&"--addr=0.0.0.0:8443") && args.contains(&"--admin-addr=0.0.0.0:8080"));
    let pdb = find(&objs, "PodDisruptionBudget", FULLNAME);
    assert_eq!(pdb["spec"]["maxUnavailable"], 1);

    // Every flag the chart passes is one `regent serve` accepts.
    let help = Command::new(env!("CARGO_BIN_EXE_regent"))
        .args(["serve", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8(help.stdout).unwrap();
    for arg in args.iter().filter(|a| a.starts_with("--")) {
        let flag = arg.split('=').next().unwrap();
        assert!(
            help.contains(&format!("{flag} ")) || help.contains(&format!("{flag}\n")),
            "regent serve has no {flag}"
        );
    }
    let env: Vec<&str> = c["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(env, ["POD_NAMESPACE", "POD_NAME"]);
}

#[test]
fn client_certificate_mode_mounts_the_ca_and_passes_the_flags() {
    let objs = render(&[
        "--set",
        "clientAuth.enabled=true",
        "--set",
        "clientAuth.caConfigMap=apiserver-client-ca",
        "--set",
        "clientAuth.commonName=kube-apiserver-webhook-client",
    ]);
    let d = find(&objs, "Deployment", FULLNAME);
    let pod = &d["spec"]["template"]["spec"];
    let args: Vec<&str> = pod["containers"][0]["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert!(
        args.contains(&"--client-ca=/etc/regent/client-ca/ca.crt"),
        "{args:?}"
    );
    assert!(
        args.contains(&"--client-cn=kube-apiserver-webhook-client"),
        "{args:?}"
    );
    let volume = pod["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "client-ca")
        .unwrap();
    assert_eq!(volume["configMap"]["name"], "apiserver-client-ca");
    let mount = pod["containers"][0]["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == "client-ca")
        .unwrap();
    assert_eq!(mount["mountPath"], "/etc/regent/client-ca");
    // Off by default; on without a CA source is a rendering error.
    let plain = render(&[]);
    let args = find(&plain, "Deployment", FULLNAME)["spec"]["template"]["spec"]["containers"][0]
        ["args"]
        .clone();
    assert!(!args.to_string().contains("--client-ca"));
    let err = template(&["--set", "clientAuth.enabled=true"]).unwrap_err();
    assert!(
        err.contains("clientAuth.caConfigMap or clientAuth.caSecret"),
        "{err}"
    );
}

#[test]
fn the_audit_runs_apart_with_its_own_selector_lease_rbac_and_flags() {
    let objs = render(&[
        "--set",
        "audit.enabled=true",
        "--set",
        "audit.installCRDs=true",
        "--set",
        "monitoring.serviceMonitor.enabled=true",
    ]);
    let audit = find(&objs, "Deployment", &format!("{FULLNAME}-audit"));
    let webhook_service = find(&objs, "Service", FULLNAME);
    let pod_labels = &audit["spec"]["template"]["metadata"]["labels"];
    // The webhook's Service (and PDB) must not select audit pods.
    let selects = |selector: &Value| {
        selector
            .as_object()
            .unwrap()
            .iter()
            .all(|(k, v)| pod_labels[k] == *v)
    };
    assert!(!selects(&webhook_service["spec"]["selector"]));
    assert!(!selects(
        &find(&objs, "PodDisruptionBudget", FULLNAME)["spec"]["selector"]["matchLabels"]
    ));
    assert!(selects(&audit["spec"]["selector"]["matchLabels"]));
    let args: Vec<&str> = audit["spec"]["template"]["spec"]["containers"][0]["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert_eq!(&args[..2], ["audit", "--cluster"]);
    let help = Command::new(env!("CARGO_BIN_EXE_regent"))
        .args(["audit", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8(help.stdout).unwrap();
    for arg in args.iter().filter(|a| a.starts_with("--")) {
        let flag = arg.split('=').next().unwrap();
        assert!(
            help.contains(&format!("{flag} ")) || help.contains(&format!("{flag}\n")),
            "regent audit has no {flag}"
        );
    }
    let role = find(&objs, "Role", &format!("{FULLNAME}-audit"));
    assert!(role["rules"]
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["apiGroups"] == json!(["coordination.k8s.io"])
            && r["resources"] == json!(["leases"])));
    let crds: Vec<&str> = objs
        .iter()
        .filter(|o| o["kind"] == "CustomResourceDefinition")
        .map(|o| o["metadata"]["name"].as_str().unwrap())
        .filter(|n| *n != "policyexceptions.regent.dev")
        .collect();
    assert_eq!(
        crds,
        [
            "policyreports.wgpolicyk8s.io",
            "clusterpolicyreports.wgpolicyk8s.io"
        ]
    );
    let sm = find(&objs, "ServiceMonitor", &format!("{FULLNAME}-audit"));
    assert!(selects(&sm["spec"]["selector"]["matchLabels"]));
    // Off by default: no audit objects at all.
    let plain = render(&[]);
    assert!(!plain.iter().any(|o| o["metadata"]["name"]
        .as_str()
        .unwrap_or("")
        .ends_with("-audit")));
    let err = template(&[
        "--set",
        "audit.enabled=true",
        "--set",
        "audit.reportFormat=sarif",
    ])
    .unwrap_err();
    assert!(err.contains("audit.reportFormat must be"), "{err}");
}

#[test]
fn the_grafana_dashboard_is_valid_and_queries_only_exported_metrics() {
    let objs = render(&["--set", "grafana.dashboard.enabled=true"]);
    let cm = find(&objs, "ConfigMap", &format!("{FULLNAME}-dashboard"));
    assert_eq!(cm["metadata"]["labels"]["grafana_dashboard"], "1");
    let dashboard: Value =
        serde_json::from_str(cm["data"]["regent.json"].as_str().unwrap()).unwrap();
    assert_eq!(dashboard["uid"], "regent-overview");
    let exported: Vec<String> = regent::metrics::Metrics::new()
        .unwrap()
        .registry()
        .gather()
        .iter()
        .map(|f| f.name().to_string())
        .collect();
    let mut queries = 0;
    let mut titles = Vec::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        titles.push(panel["title"].as_str().unwrap().to_string());
        for target in panel["targets"].as_array().unwrap() {
            let expr = target["expr"].as_str().unwrap();
            let mut named = 0;
            for word in expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
                if let Some(base) = word.strip_prefix("regent_") {
                    let name = format!("regent_{base}");
                    let family = name.trim_end_matches("_bucket").to_string();
                    assert!(
                        exported.contains(&family) || declared_metric(&family),
                        "panel {:?} queries {name}, which regent does not export",
                        panel["title"]
                    );
                    named += 1;
                }
            }
            assert!(named > 0, "{expr} names no regent metric");
            queries += 1;
        }
    }
    assert!(queries >= 14, "{queries}");
    for what in [
        "Admission requests",
        "latency",
        "Denials per policy",
        "bundle revision",
        "reloads",
        "per namespace",
        "scan duration",
    ] {
        assert!(
            titles
                .iter()
                .any(|t| t.to_lowercase().contains(&what.to_lowercase())),
            "no panel about {what}: {titles:?}"
        );
    }
}

#[test]
fn regents_own_pod_passes_the_default_policies() {
    let objs = render(&[]);
    let d = find(&objs, "Deployment", FULLNAME).clone();
    let review = common::review("admission.k8s.io/v1", "CREATE", &d);
    let bundle = regent_core::compose::CompiledBundle::compile(
        &regent_core::bundle::BundleFiles::from_dir(&repo_path("policies")).unwrap(),
        regent_core::compose::CompileOptions::default(),
    )
    .unwrap();
    let parsed = regent_core::review::parse(&serde_json::to_vec(&review).unwrap()).unwrap();
    let decision = regent_core::compose::decision::validate(
        &bundle,
        &parsed,
        &regent_core::compose::decision::DecideOptions::default(),
    );
    assert!(decision.response.allowed, "{:?}", decision.response.status);
    assert!(
        decision.response.warnings.is_empty(),
        "{:?}",
        decision.response.warnings
    );
}

#[test]
fn self_signed_mode_serves_a_certificate_for_the_service_name_signed_by_the_ca_bundle() {
    let objs = render(&[]);
    let secret = find(&objs, "Secret", &format!("{FULLNAME}-tls"));
    assert_eq!(secret["type"], "kubernetes.io/tls");
    let b64 = |v: &Value| {
        base64::engine::general_purpose::STANDARD
            .decode(v.as_str().unwrap())
            .unwrap()
    };
    let (crt, key, ca) = (
        b64(&secret["data"]["tls.crt"]),
        b64(&secret["data"]["tls.key"]),
        b64(&secret["data"]["ca.crt"]),
    );
    for kind in [
        "ValidatingWebhookConfiguration",
        "MutatingWebhookConfiguration",
    ] {
        let bundle = b64(&find(&objs, kind, FULLNAME)["webhooks"][0]["clientConfig"]["caBundle"]);
        assert_eq!(bundle, ca, "{kind} caBundle is not the Secret's CA");
    }
    let d = find(&objs, "Deployment", FULLNAME);
    assert_eq!(
        d["spec"]["template"]["spec"]["volumes"][0]["secret"]["secretName"],
        format!("{FULLNAME}-tls")
    );
    // A real handshake: our TLS stack serving the chart's pair, a client
    // trusting only the caBundle and asking for the service DNS name.
    let pair = regent::serve::tls::certified_key(&crt, &key, "chart").unwrap();
    let config =
        regent::serve::tls::server_config(regent::serve::tls::CertResolver::new(pair), None)
            .unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(config);
        let server = tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            acceptor.accept(tcp).await.map(|_| ())
        });
        let mut roots = rustls::RootCertStore::empty();
        for c in rustls::pki_types::pem::PemObject::pem_slice_iter(&ca) {
            roots.add(c.unwrap()).unwrap();
        }
        let client = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
        let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(client));
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let name = rustls::pki_types::ServerName::try_from(format!("{FULLNAME}.{NS}.svc")).unwrap();
        connector
            .connect(name, tcp)
            .await
            .expect("the API server would accept this certificate");
        server.await.unwrap().unwrap();
    });
}

#[test]
fn cert_manager_mode_injects_the_ca_and_issues_for_the_service_name() {
    let objs = render(&["--set", "certs.mode=certManager"]);
    assert!(!kinds(&objs).contains(&"Secret".to_string()));
    for kind in [
        "ValidatingWebhookConfiguration",
        "MutatingWebhookConfiguration",
    ] {
        let cfg = find(&objs, kind, FULLNAME);
        assert_eq!(
            cfg["metadata"]["annotations"]["cert-manager.io/inject-ca-from"],
            format!("{NS}/{FULLNAME}-serving")
        );
        assert!(cfg["webhooks"][0]["clientConfig"].get("caBundle").is_none());
    }
    let cert = find(&objs, "Certificate", &format!("{FULLNAME}-serving"));
    assert!(cert["spec"]["dnsNames"]
        .as_array()
        .unwrap()
        .contains(&json!(format!("{FULLNAME}.{NS}.svc"))));
    assert_eq!(cert["spec"]["secretName"], format!("{FULLNAME}-tls"));
    assert_eq!(cert["spec"]["issuerRef"]["name"], format!("{FULLNAME}-ca"));
    find(&objs, "Issuer", &format!("{FULLNAME}-ca"));
    find(&objs, "Issuer", &format!("{FULLNAME}-selfsigned"));
    // With a given issuer, no bootstrap issuers are created.
    let objs = render(&[
        "--set",
        "certs.mode=certManager",
        "--set",
        "certs.certManager.issuerRef.name=corp",
        "--set",
        "certs.certManager.issuerRef.kind=ClusterIssuer",
    ]);
    assert!(!kinds(&objs).contains(&"Issuer".to_string()));
    let cert = find(&objs, "Certificate", &format!("{FULLNAME}-serving"));
    assert_eq!(
        cert["spec"]["issuerRef"],
        json!({"name": "corp", "kind": "ClusterIssuer", "group": "cert-manager.io"})
    );
}

#[test]
fn existing_secret_mode_uses_the_given_secret_and_ca() {
    let pem = regent::serve::tls::generate_dev(&["x".into()])
        .unwrap()
        .ca_pem;
    let b64 = base64::engine::general_purpose::STANDARD.encode(pem.as_bytes());
    for given in [pem.as_str(), b64.as_str()] {
        let objs = render(&[
            "--set",
            "certs.mode=existingSecret",
            "--set",
            "certs.existingSecret=corp-tls",
            "--set-string",
            &format!("certs.caBundle={given}"),
        ]);
        assert!(!kinds(&objs).contains(&"Secret".to_string()));
        let d = find(&objs, "Deployment", FULLNAME);
        assert_eq!(
            d["spec"]["template"]["spec"]["volumes"][0]["secret"]["secretName"],
            "corp-tls"
        );
        for kind in [
            "ValidatingWebhookConfiguration",
            "MutatingWebhookConfiguration",
        ] {
            assert_eq!(
                find(&objs, kind, FULLNAME)["webhooks"][0]["clientConfig"]["caBundle"],
                b64.as_str()
            );
        }
    }
    let err = template(&[
        "--set",
        "certs.mode=existingSecret",
        "--set",
        "certs.existingSecret=corp-tls",
    ])
    .unwrap_err();
    assert!(err.contains("certs.caBundle"), "{err}");
    let err = template(&[
        "--set",
        "certs.mode=existingSecret",
        "--set-string",
        "certs.caBundle=abc",
    ])
    .unwrap_err();
    assert!(err.contains("certs.existingSecret is required"), "{err}");
    let err = template(&["--set", "certs.mode=vault"]).unwrap_err();
    assert!(err.contains("certs.mode must be"), "{err}");
}

fn files_under(root: &Path) -> BTreeMap<String, String> {
    walkdir::WalkDir::new(root)
        .into_iter()
        .map(|e| e.unwrap())
        .filter(|e| e.file_type().is_file())
        .map(|e| {
            let rel = e
                .path()
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .to_string();
            (rel, std::fs::read_to_string(e.path()).unwrap())
        })
        .collect()
}

#[test]
fn the_charts_policies_are_identical_to_the_default_bundle() {
    let repo = files_under(&repo_path("policies"));
    let chart = files_under(&repo_path("charts/regent/policies"));
    assert_eq!(
        repo.keys().collect::<Vec<_>>(),
        chart.keys().collect::<Vec<_>>(),
        "charts/regent/policies has drifted from policies/: run `rm -r charts/regent/policies && cp -r policies charts/regent/policies`"
    );
    for (path, text) in &repo {
        assert_eq!(
            Some(text),
            chart.get(path),
            "charts/regent/policies/{path} has drifted from policies/{path}"
        );
    }
    // Rendered as shipped (the enforcement each data.yaml sets, mutation
    // on), the ConfigMaps carry exactly those files at those paths.
    let objs = render(&[
        "--set",
        "policies.default.mode=deny",
        "--set",
        "policies.default.mutation=true",
    ]);
    let mut rendered = BTreeMap::new();
    let mut configmaps = Vec::new();
    for cm in objs.iter().filter(|o| {
        o["kind"] == "ConfigMap" && o["metadata"]["labels"]["regent.dev/bundle"] == "default"
    }) {
        let base = cm["metadata"]["annotations"]["regent.dev/bundle-path"]
            .as_str()
            .unwrap();
        for (key, text) in cm["data"].as_object().unwrap() {
            rendered.insert(format!("{base}/{key}"), text.as_str().unwrap().to_string());
        }
        configmaps.push(
            serde_json::from_value::<k8s_openapi::api::core::v1::ConfigMap>(cm.clone()).unwrap(),
        );
    }
    let repo_trimmed: BTreeMap<String, String> = repo
        .iter()
        .map(|(k, v)| (k.clone(), v.trim_end().to_string()))
        .collect();
    let rendered_trimmed: BTreeMap<String, String> = rendered
        .iter()
        .map(|(k, v)| (k.clone(), v.trim_end().to_string()))
        .collect();
    assert_eq!(rendered_trimmed, repo_trimmed);
    // And they load through the server's ConfigMap path into the same
    // policies, whose tests all pass.
    let refs: Vec<&k8s_openapi::api::core::v1::ConfigMap> = configmaps.iter().collect();
    let entries = regent::reload::configmaps::entries(&refs).unwrap();
    let files = regent_core::bundle::BundleFiles::from_entries("chart", entries).unwrap();
    let bundle = regent_core::compose::CompiledBundle::compile(
        &files,
        regent_core::compose::CompileOptions {
            include_tests: true,
            ..Default::default()
        },
    )
    .unwrap();
    let from_dir = regent_core::compose::CompiledBundle::compile(
        &regent_core::bundle::BundleFiles::from_dir(&repo_path("policies")).unwrap(),
        regent_core::compose::CompileOptions::default(),
    )
    .unwrap();
    let names = |b: &regent_core::compose::CompiledBundle| {
        b.policies()
            .iter()
            .map(|p| (p.name.clone(), p.enforcement))
            .collect::<Vec<_>>()
    };
    assert_eq!(names(&bundle), names(&from_dir));
    assert!(bundle.tests().len() >= 50);
    for case in bundle.tests() {
        assert_eq!(bundle.run_test(case), Ok(true), "{}", case.rule);
    }
}

#[test]
fn default_bundle_can_be_switched_off_and_extra_policies_added() {
    let values = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        values.path(),
        "policies:\n  default:\n    enabled: false\n  extra:\n    - name: team-guardrails\n      bundlePath: validate/no_default_namespace\n      files:\n        policy.rego: |\n          package validate.no_default_namespace\n          import rego.v1\n          violation contains \"no\" if input.request.namespace == \"default\"\n        data.yaml: |\n          enforcement: warn\nwebhook:\n  objectSelector:\n    matchExpressions:\n      - {key: regent.dev/skip, operator: DoesNotExist}\n  matchConditions:\n    - name: not-nodes\n      expression: '!request.userInfo.username.startsWith(\"system:node:\")'\n",
    )
    .unwrap();
    let objs = render(&["-f", values.path().to_str().unwrap()]);
    let cms: Vec<&Value> = objs.iter().filter(|o| o["kind"] == "ConfigMap").collect();
    assert_eq!(cms.len(), 1);
    assert_eq!(cms[0]["metadata"]["name"], "team-guardrails");
    assert_eq!(cms[0]["metadata"]["labels"]["regent.dev/bundle"], "extra");
    assert_eq!(
        cms[0]["metadata"]["annotations"]["regent.dev/bundle-path"],
        "validate/no_default_namespace"
    );
    let w = &find(&objs, "ValidatingWebhookConfiguration", FULLNAME)["webhooks"][0];
    assert_eq!(
        w["objectSelector"]["matchExpressions"][0]["key"],
        "regent.dev/skip"
    );
    assert_eq!(w["matchConditions"][0]["name"], "not-nodes");
    let cm: k8s_openapi::api::core::v1::ConfigMap = serde_json::from_value(cms[0].clone()).unwrap();
    let files = regent_core::bundle::BundleFiles::from_entries(
        "chart",
        regent::reload::configmaps::entries(&[&cm]).unwrap(),
    )
    .unwrap();
    let bundle = regent_core::compose::CompiledBundle::compile(
        &files,
        regent_core::compose::CompileOptions::default(),
    )
    .unwrap();
    assert_eq!(
        bundle.policies()[0].enforcement,
        regent_core::native::policy::Enforcement::Warn
    );
}

#[test]
fn monitoring_objects_point_at_real_ports_and_real_metrics() {
    let objs = render(&[
        "--set",
        "monitoring.serviceMonitor.enabled=true",
        "--set",
        "monitoring.prometheusRule.enabled=true",
        "--set",
        "networkPolicy.enabled=true",
    ]);
    let sm = find(&objs, "ServiceMonitor", FULLNAME);
    let service = find(&objs, "Service", FULLNAME);
    let port = sm["spec"]["endpoints"][0]["port"].as_str().unwrap();
    assert!(service["spec"]["ports"]
        .as_array()
        .unwrap()
        .iter()
        .any(|p| p["name"] == port && p["targetPort"] == "admin"));
    let rule = find(&objs, "PrometheusRule", FULLNAME);
    let alerts: BTreeMap<String, String> = rule["spec"]["groups"][0]["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["alert"].as_str().unwrap().to_string(),
                r["expr"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    for name in [
        "RegentBundleReloadFailing",
        "RegentReplicasOnDifferentRevisions",
        "RegentWebhookErrors",
        "RegentWebhookSlow",
    ] {
        assert!(alerts.contains_key(name), "missing alert {name}");
    }
    // Every regent_* series an alert uses is one the server exports.
    let exported: Vec<String> = regent::metrics::Metrics::new()
        .unwrap()
        .registry()
        .gather()
        .iter()
        .map(|f| f.name().to_string())
        .collect();
    for expr in alerts.values() {
        for word in expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
            if let Some(base) = word.strip_prefix("regent_") {
                let name = format!("regent_{base}");
                let family = name.trim_end_matches("_bucket").to_string();
                assert!(
                    exported.contains(&family) || declared_metric(&family),
                    "alert uses {name}, which regent does not export"
                );
            }
        }
    }
    let np = find(&objs, "NetworkPolicy", FULLNAME);
    let ports: Vec<u64> = np["spec"]["ingress"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["ports"][0]["port"].as_u64().unwrap())
        .collect();
    assert_eq!(ports, [8443, 8080]);
}

/// Vector metrics appear in `gather()` only once a label set is used; these
/// are declared by `Metrics::new()` all the same.
fn declared_metric(name: &str) -> bool {
    let src = std::fs::read_to_string(repo_path("src/metrics.rs")).unwrap();
    src.contains(&format!("\"{name}\""))
}

#[test]
fn exceptions_install_a_crd_a_webhook_rule_and_roles() {
    for (mode, args) in combinations() {
        let objs = render(&args);
        let has = |a: &str| args.contains(&a);
        let enabled = !has("exceptions.enabled=false");
        let crd = objs.iter().find(|o| {
            o["kind"] == "CustomResourceDefinition"
                && o["metadata"]["name"] == "policyexceptions.regent.dev"
        });
        let deploy = find(&objs, "Deployment", FULLNAME);
        let deploy_args = deploy["spec"]["template"]["spec"]["containers"][0]["args"].clone();
        let validating = find(&objs, "ValidatingWebhookConfiguration", FULLNAME);
        let rule = validating["webhooks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|w| w["name"] == "exceptions.regent.dev");
        let mutating = find(&objs, "MutatingWebhookConfiguration", FULLNAME);
        assert_eq!(
            mutating["webhooks"].as_array().unwrap().len(),
            1,
            "{mode} {args:?}: exceptions are never mutated"
        );
        if !enabled {
            assert!(crd.is_none() && rule.is_none(), "{mode} {args:?}");
            assert!(
                !deploy_args.to_string().contains("exception"),
                "{deploy_args}"
            );
            assert!(objs.iter().all(|o| !o["metadata"]["name"]
                .as_str()
                .unwrap_or("")
                .contains("exception")));
            continue;
        }
        // The CRD: structural, status subresource, printer columns.
        if has("exceptions.installCRD=false") {
            assert!(crd.is_none());
        } else {
            let crd = crd.unwrap_or_else(|| panic!("{mode} {args:?}: no CRD"));
            assert_eq!(
                crd["metadata"]["annotations"]["helm.sh/resource-policy"],
                "keep"
            );
            let v = &crd["spec"]["versions"][0];
            assert_eq!(v["name"], "v1alpha1");
            assert_eq!(v["subresources"], json!({"status": {}}));
            let columns: Vec<&str> = v["additionalPrinterColumns"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c["name"].as_str().unwrap())
                .collect();
            for c in ["Owner", "Expires", "Valid"] {
                assert!(columns.contains(&c), "{columns:?}");
            }
            let spec = &v["schema"]["openAPIV3Schema"]["properties"]["spec"];
            assert_eq!(
                spec["required"],
                json!(["policies", "match", "owner", "reason", "expires"])
            );
            assert_eq!(
                spec["properties"]["match"]["required"],
                json!(["kinds", "names"])
            );
            assert_eq!(
                spec["properties"]["match"]["properties"]["names"]["minItems"],
                1
            );
            assert_eq!(spec["properties"]["expires"]["format"], "date-time");
            // Structural: every property has a type.
            fn typed(v: &Value, at: &str) {
                if let Some(props) = v["properties"].as_object() {
                    for (k, p) in props {
                        assert!(p["type"].is_string(), "{at}.{k} has no type");
                        typed(p, &format!("{at}.{k}"));
                        if p["items"].is_object() {
                            assert!(p["items"]["type"].is_string(), "{at}.{k}[] has no type");
                            typed(&p["items"], &format!("{at}.{k}[]"));
                        }
                    }
                }
            }
            typed(&v["schema"]["openAPIV3Schema"], "");
        }
        // The webhook rule: every namespace, every version of the group.
        let rule = rule.unwrap_or_else(|| panic!("{mode} {args:?}: no exception webhook"));
        assert_eq!(rule["failurePolicy"], "Fail");
        assert!(rule.get("namespaceSelector").is_none());
        assert_eq!(rule["clientConfig"]["service"]["path"], "/validate");
        assert_eq!(
            rule["rules"],
            json!([{"apiGroups": ["regent.dev"], "apiVersions": ["*"], "resources": ["policyexceptions"],
                    "operations": ["CREATE", "UPDATE"], "scope": "Namespaced"}])
        );
        if mode == "selfSigned" {
            assert_eq!(
                rule["clientConfig"]["caBundle"],
                validating["webhooks"][0]["clientConfig"]["caBundle"]
            );
        }
        // The webhook reads them cluster-wide and writes their status.
        let role = find(&objs, "ClusterRole", &format!("{FULLNAME}-exceptions"));
        assert_eq!(
            role["rules"],
            json!([
                {"apiGroups": ["regent.dev"], "resources": ["policyexceptions"], "verbs": ["get", "list", "watch"]},
                {"apiGroups": ["regent.dev"], "resources": ["policyexceptions/status"], "verbs": ["patch"]},
                {"apiGroups": ["events.k8s.io"], "resources": ["events"], "verbs": ["create"]}
            ])
        );
        let binding = find(
            &objs,
            "ClusterRoleBinding",
            &format!("{FULLNAME}-exceptions"),
        );
        assert_eq!(binding["subjects"][0]["name"], FULLNAME);
        // Roles for people: editing aggregated into `edit` only on request.
        let editor = find(&objs, "ClusterRole", "regent-exception-editor");
        let viewer = find(&objs, "ClusterRole", "regent-exception-viewer");
        let label = |r: &Value, l: &str| r["metadata"]["labels"][l] == "true";
        assert_eq!(
            label(editor, "rbac.authorization.k8s.io/aggregate-to-edit"),
            has("exceptions.aggregateToEdit=true"),
            "{mode} {args:?}"
        );
        assert_eq!(
            label(viewer, "rbac.authorization.k8s.io/aggregate-to-view"),
            !has("exceptions.aggregateToView=false")
        );
        assert!(viewer["rules"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["verbs"] == json!(["get", "list", "watch"])));
        // Both processes watch them, under the same governance.
        let admin = if has("exceptions.adminNamespace=security") {
            "security"
        } else {
            NS
        };
        let mut processes = vec![deploy_args];
        if has("audit.enabled=true") {
            let audit = find(&objs, "Deployment", &format!("{FULLNAME}-audit"));
            processes.push(audit["spec"]["template"]["spec"]["containers"][0]["args"].clone());
            let role = find(&objs, "ClusterRole", &format!("{FULLNAME}-audit"));
            assert!(role["rules"]
                .as_array()
                .unwrap()
                .contains(&json!({"apiGroups": ["regent.dev"], "resources": ["policyexceptions"], "verbs": ["list", "watch"]})));
        }
        for a in processes {
            let a: Vec<&str> = a
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_str().unwrap())
                .collect();
            assert!(a.contains(&"--watch-exceptions"), "{a:?}");
            assert!(
                a.contains(&format!("--exception-admin-namespace={admin}").as_str()),
                "{a:?}"
            );
            assert!(a.contains(&"--exception-max-duration=90d"));
            assert!(a.contains(&"--exception-warn-before=14d"));
            assert_eq!(
                a.contains(
                    &"--exception-help=Ask #platform-security: https://wiki.example/exceptions"
                ),
                args.iter().any(|x| x.starts_with("exceptions.helpText")),
                "{a:?}"
            );
        }
    }
}

#[test]
fn the_decision_log_reaches_the_webhook_with_its_secret_volumes_and_egress() {
    for (mode, args) in combinations() {
        let objs = render(&args);
        let deploy = find(&objs, "Deployment", FULLNAME);
        let pod = &deploy["spec"]["template"]["spec"];
        let flags: Vec<&str> = pod["containers"][0]["args"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap())
            .collect();
        let on = args.iter().any(|a| a.starts_with("decisionLog.sinks="));
        if !on {
            assert!(
                !flags.iter().any(|f| f.starts_with("--decision-log")),
                "{mode} {args:?}: {flags:?}"
            );
            assert!(!objs
                .iter()
                .any(|o| o["metadata"]["name"] == format!("{FULLNAME}-decision-log")));
            continue;
        }
        for want in [
            "--decision-log=stdout",
            "--decision-log=file:/var/log/regent/decisions.log",
            "--decision-log=https://logs.example.com/regent",
            "--decision-log-allowed=0.01",
            "--decision-log-include-object",
            "--decision-log-mask=/spec/template/spec/containers/*/env/*/value",
            "--decision-log-token-file=/etc/regent/decision-log-token/token",
            "--decision-log-ca=/etc/regent/decision-log-ca/ca.crt",
        ] {
            assert!(flags.contains(&want), "{want} missing: {flags:?}");
        }
        // The flags parse as the server parses them.
        use clap::Parser;
        let mut argv = vec!["regent", "serve"];
        argv.extend(flags.iter().filter(|f| f.starts_with("--decision-log")));
        let cli = regent::cli::Cli::try_parse_from(&argv);
        assert!(cli.is_ok(), "{argv:?}: {:?}", cli.err());
        let secret = find(&objs, "Secret", &format!("{FULLNAME}-decision-log"));
        assert_eq!(secret["data"]["token"], "czNjcmV0");
        let mounts = pod["containers"][0]["volumeMounts"].to_string();
        for m in [
            "/var/log/regent",
            "/etc/regent/decision-log-token",
            "/etc/regent/decision-log-ca",
        ] {
            assert!(mounts.contains(m), "{m}: {mounts}");
        }
        let volumes = pod["volumes"].as_array().unwrap();
        let logs = volumes
            .iter()
            .find(|v| v["name"] == "decision-log")
            .unwrap();
        // Room for every rotated file, and some.
        assert_eq!(logs["emptyDir"]["sizeLimit"], "516Mi");
        let np = find(&objs, "NetworkPolicy", FULLNAME);
        assert_eq!(np["spec"]["policyTypes"], json!(["Ingress", "Egress"]));
        let egress = np["spec"]["egress"].as_array().unwrap();
        assert!(egress.iter().any(|e| e["ports"][0]["port"] == 53));
        assert!(egress
            .iter()
            .any(|e| e["to"][0]["ipBlock"]["cidr"] == "10.0.40.0/24"));
    }
}
