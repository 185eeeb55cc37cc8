"""Checks every write passes before the store: URL and body agree, names are valid, the
namespace exists, custom resources match their CRD's schema (a CRD, apiextensions' rules),
and modelled kinds go through the lab's admission (``model_admission.py``), custom ones after
their schema."""

from __future__ import annotations

import re
import secrets
import string
from typing import Any

from agent.model.convert import ConversionError, from_dict
from lab.apiserver import crds, schema
from lab.apiserver.errors import ApiError, bad_request, invalid, not_found
from lab.apiserver.model_admission import AdmissionError, admit
from lab.apiserver.routing import Target
from lab.apiserver.secret_data import merge_string_data
from lab.store import Store

_DNS1123_SUBDOMAIN = re.compile(
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
)
_NAME_CHARS = string.ascii_lowercase + string.digits


def shape(target: Target, body: Any, *, creating: bool) -> dict[str, Any]:
    """Check that the body is an object of the target's kind, in the target's namespace and
    with the target's name, filling in what the URL implies. Returns a private copy."""
    res = target.resource
    if not isinstance(body, dict):
        raise bad_request("the request body must be a JSON or YAML object")
    obj = dict(body)
    kind = obj.setdefault("kind", res.kind)
    if kind != res.kind:
        raise bad_request(f"the kind {kind!r} in the body does not match the URL ({res.kind})")
    api_version = obj.setdefault("apiVersion", target.api_version)
    if api_version not in [res.api_version(v) for v in res.versions]:
        raise bad_request(f"apiVersion {api_version!r} is not served for {res.kind}")
    obj["apiVersion"] = res.api_version()
    meta = obj.get("metadata")
    if meta is None:
        meta = {}
    if not isinstance(meta, dict):
        raise bad_request("metadata must be an object")
    meta = obj["metadata"] = dict(meta)
    if creating and not meta.get("name") and meta.get("generateName"):
        suffix = "".join(secrets.choice(_NAME_CHARS) for _ in range(5))
        meta["name"] = f"{meta['generateName']}{suffix}"
    name = meta.get("name")
    if target.name is not None and name not in (None, target.name):
        raise bad_request(
            f"the name of the object ({name}) does not match the name on the URL ({target.name})"
        )
    if target.name is not None:
        meta["name"] = name = target.name
    if not isinstance(name, str) or not name:
        raise invalid(
            res.kind, "", [("metadata.name", "Required value: name or generateName is required")]
        )
    if len(name) > 253 or not _DNS1123_SUBDOMAIN.match(name):
        raise invalid(
            res.kind,
            name,
            [
                (
                    "metadata.name",
                    f'Invalid value: "{name}": a lowercase RFC 1123 subdomain must '
                    "consist of lower case alphanumeric characters, '-' or '.'",
                )
            ],
        )
    if res.namespaced:
        ns = meta.get("namespace") or target.namespace
        if target.namespace is not None and ns != target.namespace:
            raise bad_request(
                "the namespace of the provided object does not match the namespace sent on the "
                "request"
            )
        if not ns:
            raise bad_request("a namespaced object needs a namespace")
        meta["namespace"] = ns
    else:
        meta.pop("namespace", None)
    return obj


def check_namespace(store: Store, target: Target, obj: dict[str, Any]) -> None:
    ns = obj["metadata"].get("namespace")
    if target.resource.namespaced and store.get("Namespace", "", ns) is None:
        raise not_found("namespaces", ns)


def overlay(sent: Any, admitted: Any) -> Any:
    """``admitted`` (validated, defaulted) laid over ``sent``: fields the model does not carry
    (probes, resources, volumes...) stay as sent, every field it does carry takes its value."""
    if isinstance(sent, dict) and isinstance(admitted, dict):
        out = dict(sent)
        for key, value in admitted.items():
            out[key] = overlay(sent[key], value) if key in sent else value
        return out
    if isinstance(sent, list) and isinstance(admitted, list) and len(sent) == len(admitted):
        return [overlay(s, a) for s, a in zip(sent, admitted, strict=True)]
    return admitted


def _same_model(a: dict[str, Any], b: dict[str, Any]) -> bool:
    try:
        return from_dict(a) == from_dict(b)
    except ConversionError:
        return False


def admitted(
    store: Store, target: Target, obj: dict[str, Any], *, registrar: bool = False
) -> dict[str, Any]:
    """The object to store: for modelled kinds, what the lab's admission validated and
    defaulted, laid over what was sent, so ``kubectl get -o yaml`` shows every field applied
    (as a cluster does) while the model reads exactly what admission checked. A Secret's
    write-only ``stringData`` is merged into ``data`` first (``secret_data.py``)."""
    if obj["kind"] == "Secret":
        obj = merge_string_data(obj)
    declared = target.resource.schema_dict()
    problems = schema.validate(declared, obj) if declared is not None else []
    if obj["kind"] == crds.CRD_KIND:
        problems = crds.problems(obj)
    if problems:
        raise invalid(obj["kind"], obj["metadata"]["name"], problems, target.resource.group)
    if not target.resource.modelled:
        return obj
    # A modelled custom resource (Gateway API): the schema passed; the typed model checks
    # what upstream's CEL rules and webhooks would (the lab's stand-in for them).
    try:
        (result,) = admit(store, [("request", obj)], registrar=registrar)
    except AdmissionError as err:
        raise invalid(
            obj["kind"],
            obj["metadata"]["name"],
            [_field(e) for e in err.errors],
            target.resource.group,
        ) from None
    except ValueError as err:  # admission's own limits (size, depth) raise ValueError too
        raise ApiError(
            422, f'{obj["kind"]} "{obj["metadata"]["name"]}" is invalid: {err}'
        ) from None
    result.pop("status", None)
    full = overlay(obj, result)
    full.pop("status", None)
    return full if _same_model(full, result) else result


# A field path: names, indices and map keys (``data[a b]``: a key may hold a space).
_PATH = re.compile(r"^[A-Za-z0-9_.$-]+(\[[^\]]*\][A-Za-z0-9_.$-]*)*$")


def _field(error: str) -> tuple[str, str]:
    """ "request: Kind ns/name: spec.x: message" -> ("spec.x", "message")."""
    text = error.removeprefix("request: ")
    parts = text.split(": ", 2)
    if len(parts) == 3 and _PATH.match(parts[1]):
        return parts[1], parts[2]
    if len(parts) >= 2:
        return "", ": ".join(parts[1:])
    return "", text
