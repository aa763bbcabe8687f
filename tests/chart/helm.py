#!/usr/bin/env python3
"""A small `helm` for Ferry's chart tests: real Helm v4 (helm-python-sdk, the
Go SDK as a shared library) behind the familiar subcommands.

    helm.py template CHART [--name NAME] [-n NS] [--set k=v] [-f FILE]
                           [--api-versions GVK] [--kube-version V]
    helm.py lint CHART [--set k=v] [-f FILE] [--kube-version V]
    helm.py install NAME CHART [--kubeconfig K] [-n NS] [--create-namespace]
                               [--set k=v] [-f FILE] [--wait] [--timeout S]
                               [--dry-run client|server]
                               [--disable-openapi-validation]
    helm.py upgrade NAME CHART [...install's options] [--reuse-values]
                               [--reset-values]
    helm.py uninstall NAME [--kubeconfig K] [-n NS] [--wait] [--timeout S]
                           [--keep-history] [--ignore-not-found]
    helm.py status NAME [--kubeconfig K] [-n NS] [-o json|manifest|notes]

`template` prints what `helm template` prints (install as a client-side dry
run: no cluster, `lookup` finds nothing); `lint` prints each finding and
fails on any warning or error. Errors go to stderr with exit status 1.

Run it with any python3: it re-executes itself with the virtualenv that
tests/chart/setup.sh makes.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

CACHE = Path(
    os.environ.get("FERRY_CACHE_DIR")
    or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "ferry"
)
VENV_PYTHON = CACHE / "helm-venv" / "bin" / "python"

try:
    import helm_python as helm
    from helm_python import _native
except ImportError:
    if VENV_PYTHON.exists() and Path(sys.executable) != VENV_PYTHON:
        os.execv(VENV_PYTHON, [str(VENV_PYTHON), __file__, *sys.argv[1:]])
    sys.exit(
        f"helm.py: helm-python-sdk is not installed ({VENV_PYTHON} missing): "
        "run tests/chart/setup.sh"
    )

SEVERITY = {0: "UNKNOWN", 1: "INFO", 2: "WARNING", 3: "ERROR"}
WARNING = 2


class Failure(Exception):
    """A command that failed, with the message for the user."""


# --- values ---------------------------------------------------------------


def merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    """Deep-merges `top` into `base` as Helm merges values files."""
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            merge(base[key], value)
        else:
            base[key] = value
    return base


def user_values(args: argparse.Namespace) -> dict[str, Any]:
    """-f files in order, then --set expressions, as the helm CLI does."""
    values: dict[str, Any] = {}
    for path in args.values:
        try:
            text = Path(path).read_text()
        except OSError as error:
            raise Failure(f"cannot read values file {path}: {error.strerror}") from error
        try:
            merge(values, helm.values_from_yaml(text) or {})
        except helm.HelmError as error:
            raise Failure(f"values file {path}: {error}") from error
    for expression in args.set:
        try:
            merge(values, helm.parse_set_string(expression))
        except helm.HelmError as error:
            raise Failure(f"--set {expression}: {error}") from error
    return values


# --- the library ------------------------------------------------------------


def config(args: argparse.Namespace) -> helm.Config:
    kubeconfig = getattr(args, "kubeconfig", None)
    if kubeconfig and not Path(kubeconfig).is_file():
        raise Failure(f"kubeconfig {kubeconfig} does not exist")
    return helm.Config(kubeconfig_path=kubeconfig, namespace=args.namespace)


def load_chart(path: str) -> helm.Chart:
    if not Path(path).exists():
        raise Failure(f"chart {path} does not exist")
    return helm.Chart.load(path)


def release_action(
    symbol: str, cfg: helm.Config, chart: helm.Chart, name: str, values: dict, opts: dict
) -> dict[str, Any]:
    """helm_install / helm_upgrade with the full option set of the C ABI.

    The Python layer forwards only some options (not the OpenAPI switch, API
    versions or kube version), so this calls the same native function it
    does, with the same argument order, for the pinned library version.
    """
    payload = _native.call_string(
        symbol,
        cfg._raw(),
        _native.HANDLE(0),
        chart._raw(),
        None,
        name,
        json.dumps(values),
        json.dumps({k: v for k, v in opts.items() if v is not None}),
    )
    result: dict[str, Any] = json.loads(payload)
    return result


def common_release_opts(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "namespace": args.namespace,
        "timeout_seconds": args.timeout,
        "wait": "watcher" if args.wait else None,
        "dry_run": args.dry_run,
        "disable_openapi_validation": args.disable_openapi_validation,
    }


# --- commands ---------------------------------------------------------------


def cmd_template(args: argparse.Namespace) -> None:
    with load_chart(args.chart) as chart, helm.Config(namespace=args.namespace) as cfg:
        release = release_action(
            "helm_install",
            cfg,
            chart,
            args.name,
            user_values(args),
            {
                "namespace": args.namespace,
                "dry_run": "client",
                "kube_version": args.kube_version,
                "api_versions": args.api_versions,
            },
        )
    sys.stdout.write(release.get("manifest", ""))
    if args.notes and release.get("notes"):
        sys.stdout.write("---\n# Source: NOTES.txt\n" + release["notes"])


def cmd_lint(args: argparse.Namespace) -> None:
    report = helm.lint(
        args.chart,
        user_values(args),
        strict=True,
        namespace=args.namespace,
        kube_version=args.kube_version,
    )
    worst = 0
    for message in report.get("messages", []):
        severity = int(message.get("severity", 0))
        worst = max(worst, severity)
        print(f"[{SEVERITY.get(severity, severity)}] {message.get('path', '')}: {message.get('error', '')}")
    errors = report.get("errors") or []
    for error in errors:
        print(f"[ERROR] {error}")
    linted = report.get("total_charts_linted", 0)
    if worst >= WARNING or errors or linted < 1:
        raise Failure(f"lint: {args.chart} is not clean ({linted} chart(s) linted)")
    print(f"{linted} chart(s) linted, no warnings or errors")


def summary(release: dict[str, Any]) -> str:
    keys = ("name", "namespace", "revision", "status", "chart_name", "chart_version")
    return " ".join(f"{k}={release.get(k)}" for k in keys if k in release)


def cmd_install(args: argparse.Namespace) -> None:
    with load_chart(args.chart) as chart, config(args) as cfg:
        opts = common_release_opts(args) | {
            "create_namespace": args.create_namespace,
            # A tri-state bool for install (unset: Helm's default, true).
            "server_side_apply": {"true": True, "false": False, "auto": None}[args.server_side],
        }
        release = release_action("helm_install", cfg, chart, args.name, user_values(args), opts)
    print(summary(release))
    if release.get("notes"):
        print(release["notes"])


def cmd_upgrade(args: argparse.Namespace) -> None:
    with load_chart(args.chart) as chart, config(args) as cfg:
        opts = common_release_opts(args) | {
            "reuse_values": args.reuse_values,
            "reset_values": args.reset_values,
            # A string for upgrade: auto follows how the release was applied.
            "server_side_apply": args.server_side,
        }
        release = release_action("helm_upgrade", cfg, chart, args.name, user_values(args), opts)
    print(summary(release))


def cmd_uninstall(args: argparse.Namespace) -> None:
    with config(args) as cfg:
        result = cfg.uninstall(
            args.name,
            keep_history=args.keep_history,
            timeout=args.timeout,
            ignore_not_found=args.ignore_not_found,
            wait="watcher" if args.wait else None,
        )
    print(result.get("info") or f"release {args.name} uninstalled")


def cmd_status(args: argparse.Namespace) -> None:
    with config(args) as cfg:
        release = cfg.status(args.name)
    if args.output == "manifest":
        sys.stdout.write(release.get("manifest", ""))
    elif args.output == "notes":
        sys.stdout.write(release.get("notes", ""))
    else:
        print(json.dumps(release, indent=2))


# --- arguments --------------------------------------------------------------


def parser() -> argparse.ArgumentParser:
    cluster = argparse.ArgumentParser(add_help=False)
    cluster.add_argument("--kubeconfig", help="kubeconfig file (default: KUBECONFIG, ~/.kube/config)")
    cluster.add_argument("-n", "--namespace", default="default")

    values = argparse.ArgumentParser(add_help=False)
    values.add_argument("--set", action="append", default=[], metavar="K=V")
    values.add_argument("-f", "--values", action="append", default=[], metavar="FILE")

    waiting = argparse.ArgumentParser(add_help=False)
    waiting.add_argument("--wait", action="store_true", help="wait until the objects are ready")
    waiting.add_argument("--timeout", type=int, metavar="SECONDS")

    release = argparse.ArgumentParser(add_help=False, parents=[cluster, values, waiting])
    release.add_argument("name")
    release.add_argument("chart")
    release.add_argument("--dry-run", choices=["client", "server"])
    release.add_argument(
        "--server-side",
        choices=["true", "false", "auto"],
        default="auto",
        help="apply with server-side apply (Helm 4's default for new releases) "
        "or client-side; a 1.20 server's typed apply refuses CRD fields it "
        "does not know, such as x-kubernetes-validations",
    )
    release.add_argument(
        "--disable-openapi-validation",
        action="store_true",
        help="skip client-side schema validation (an old server's OpenAPI "
        "does not know newer CRD fields such as x-kubernetes-validations)",
    )

    top = argparse.ArgumentParser(prog="helm.py", description=__doc__.splitlines()[0])
    sub = top.add_subparsers(dest="command", required=True)

    p = sub.add_parser("template", parents=[values], help="render as `helm template` does")
    p.add_argument("chart")
    p.add_argument("--name", default="release-name")
    p.add_argument("-n", "--namespace", default="default")
    p.add_argument("--api-versions", action="append", default=[], metavar="GROUP/VERSION[/KIND]")
    p.add_argument("--kube-version", metavar="V")
    p.add_argument("--notes", action="store_true", help="also print NOTES.txt")
    p.set_defaults(run=cmd_template)

    p = sub.add_parser("lint", parents=[values], help="lint; fail on any warning or error")
    p.add_argument("chart")
    p.add_argument("-n", "--namespace", default="default")
    p.add_argument("--kube-version", metavar="V")
    p.set_defaults(run=cmd_lint)

    p = sub.add_parser("install", parents=[release], help="install a release")
    p.add_argument("--create-namespace", action="store_true")
    p.set_defaults(run=cmd_install)

    p = sub.add_parser("upgrade", parents=[release], help="upgrade a release")
    p.add_argument("--reuse-values", action="store_true")
    p.add_argument("--reset-values", action="store_true")
    p.set_defaults(run=cmd_upgrade)

    p = sub.add_parser("uninstall", parents=[cluster, waiting], help="uninstall a release")
    p.add_argument("name")
    p.add_argument("--keep-history", action="store_true")
    p.add_argument("--ignore-not-found", action="store_true")
    p.set_defaults(run=cmd_uninstall)

    p = sub.add_parser("status", parents=[cluster], help="show a release")
    p.add_argument("name")
    p.add_argument("-o", "--output", choices=["json", "manifest", "notes"], default="json")
    p.set_defaults(run=cmd_status)
    return top


def main() -> int:
    args = parser().parse_args()
    try:
        args.run(args)
    except Failure as failure:
        print(f"helm.py: {failure}", file=sys.stderr)
        return 1
    except helm.HelmError as error:
        print(f"helm.py: {args.command} failed: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
