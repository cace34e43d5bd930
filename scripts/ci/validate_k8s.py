#!/usr/bin/env python3
"""Validates deploy/k8s against the Kubernetes schemas, without a cluster or kustomize.

Renders each kustomization the way kustomize would for the features these manifests use
(resources, a base, `images` tags, `labels`, strategic-merge patches whose lists of named items
merge by name), validates every rendered resource with `kubernetes-validate --strict` at a
pinned Kubernetes version, and checks the invariants the daemon relies on: the grace period
covers preStop + --drain-seconds, probes hit /health, the plugins volume is a ConfigMap.

  python3 scripts/ci/validate_k8s.py            # needs: pip install kubernetes-validate==1.37.0 pyyaml
"""
import copy
import os
import subprocess
import sys
import tempfile

import yaml

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "deploy", "k8s")
K8S_VERSION = "1.30.0"


def merge(base, patch):
    """Strategic merge, enough for these manifests: maps merge, lists of named maps merge by name."""
    if isinstance(base, dict) and isinstance(patch, dict):
        out = dict(base)
        for k, v in patch.items():
            out[k] = merge(base[k], v) if k in base else copy.deepcopy(v)
        return out
    if isinstance(base, list) and isinstance(patch, list) and all(isinstance(x, dict) and "name" in x for x in base + patch):
        out = [copy.deepcopy(x) for x in base]
        for item in patch:
            match = next((i for i, x in enumerate(out) if x["name"] == item["name"]), None)
            if match is None:
                out.append(copy.deepcopy(item))
            else:
                out[match] = merge(out[match], item)
        return out
    return copy.deepcopy(patch)


def build(directory):
    with open(os.path.join(directory, "kustomization.yaml")) as f:
        k = yaml.safe_load(f)
    docs = []
    for r in k.get("resources", []):
        path = os.path.join(directory, r)
        if os.path.isdir(path):
            docs.extend(build(path))
        else:
            with open(path) as f:
                docs.extend(d for d in yaml.safe_load_all(f) if d)
    for p in k.get("patches", []):
        with open(os.path.join(directory, p["path"])) as f:
            patch = yaml.safe_load(f)
        target = [i for i, d in enumerate(docs) if d["kind"] == patch["kind"] and d["metadata"]["name"] == patch["metadata"]["name"]]
        assert len(target) == 1, f"patch {p['path']} matches {len(target)} resources"
        docs[target[0]] = merge(docs[target[0]], patch)
    tags = {i["name"]: i.get("newTag") for i in k.get("images", [])}
    for label in k.get("labels", []):
        for d in docs:
            d["metadata"].setdefault("labels", {}).update(label["pairs"])
    for d in docs:
        for c in d.get("spec", {}).get("template", {}).get("spec", {}).get("containers", []):
            name = c["image"].split(":")[0]
            if tags.get(name):
                c["image"] = f"{name}:{tags[name]}"
    return docs


def check_invariants(docs, where):
    for d in docs:
        if d["kind"] != "Deployment":
            continue
        pod = d["spec"]["template"]["spec"]
        c = pod["containers"][0]
        env = {e["name"]: e.get("value") for e in c.get("env", [])}
        drain = int(env.get("ARBITER_DRAIN_SECONDS", "30"))
        pre = c["lifecycle"]["preStop"]["exec"]["command"]
        pre_stop = int(pre[-1]) if pre[0] == "sleep" else 0
        grace = pod["terminationGracePeriodSeconds"]
        assert grace > drain + pre_stop, f"{where}: grace {grace} s must exceed preStop {pre_stop} + drain {drain} s"
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            assert c[probe]["httpGet"]["path"] == "/health", f"{where}: {probe} must hit /health"
        plugins = [v for v in pod["volumes"] if v["name"] == "plugins"]
        assert plugins and "configMap" in plugins[0], f"{where}: plugins come from a ConfigMap"
        assert d["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0, f"{where}: rolling updates keep capacity"


def validate(docs, where):
    with tempfile.TemporaryDirectory() as tmp:
        files = []
        for i, d in enumerate(docs):
            path = os.path.join(tmp, f"{i}-{d['kind']}.yaml")
            with open(path, "w") as f:
                yaml.safe_dump(d, f)
            files.append(path)
        run = subprocess.run(["kubernetes-validate", "--strict", "--quiet", "-k", K8S_VERSION, *files],
                             capture_output=True, text=True)
        out = (run.stdout + run.stderr).strip()
        if run.returncode != 0 or "ERROR" in out:
            sys.exit(f"{where}: schema validation failed:\n{out}")
        print(f"{where}: {len(docs)} resources valid against Kubernetes {K8S_VERSION}")


def main():
    for overlay in ("base", os.path.join("overlays", "gpu")):
        docs = build(os.path.join(ROOT, overlay))
        check_invariants(docs, overlay)
        validate(docs, overlay)
    for extra in ("autoscaling", "batch"):
        directory = os.path.join(ROOT, extra)
        docs = []
        for name in sorted(os.listdir(directory)):
            with open(os.path.join(directory, name)) as f:
                docs.extend(d for d in yaml.safe_load_all(f) if d)
        # CRDs (KEDA's ScaledObject) have no built-in schema: checked for their required fields.
        crds = [d for d in docs if d["apiVersion"].startswith("keda.sh/")]
        for d in crds:
            assert d["spec"]["scaleTargetRef"]["name"] == "arbiter" and d["spec"]["triggers"], f"{extra}: ScaledObject"
        validate([d for d in docs if d not in crds], extra)


if __name__ == "__main__":
    main()
