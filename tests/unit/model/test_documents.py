"""Loading manifests: multi-document YAML, JSON, Lists, files, directories and stdin."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from agent.model.convert import LoadError, from_dict, load_documents, load_sources
from agent.model.core import Pod

NS = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {name}\n"


def test_multi_document_yaml_skips_empty_documents() -> None:
    text = "---\n" + NS.format(name="a") + "---\n# only a comment\n---\n" + NS.format(name="b")
    docs = load_documents(text, "ns.yaml")
    assert [d["metadata"]["name"] for d in docs] == ["a", "b"]


def test_empty_text_has_no_documents() -> None:
    assert load_documents("", "empty.yaml") == []
    assert load_documents("---\n...\n", "empty.yaml") == []


def test_timestamps_stay_strings_as_in_kubernetes() -> None:
    [doc] = load_documents(
        "kind: Pod\nmetadata:\n  creationTimestamp: 2024-01-02T03:04:05Z\n  d: 2024-01-02\n", "p"
    )
    assert doc["metadata"] == {"creationTimestamp": "2024-01-02T03:04:05Z", "d": "2024-01-02"}


def test_yaml_list_expands_items() -> None:
    text = (
        "apiVersion: v1\nkind: List\nitems:\n"
        "- {apiVersion: v1, kind: Namespace, metadata: {name: a}}\n"
        "- {apiVersion: v1, kind: Namespace, metadata: {name: b}}\n"
    )
    assert [d["metadata"]["name"] for d in load_documents(text, "list.yaml")] == ["a", "b"]


def test_typed_list_from_the_api_fills_in_item_kind() -> None:
    pod_list = {
        "apiVersion": "v1",
        "kind": "PodList",
        "metadata": {"resourceVersion": "7"},
        "items": [{"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c"}]}}],
    }
    [doc] = load_documents(json.dumps(pod_list), "pods.json")
    assert (doc["apiVersion"], doc["kind"]) == ("v1", "Pod")
    assert isinstance(from_dict(doc), Pod)


def test_json_single_object_and_stream() -> None:
    one = json.dumps(
        json.loads(
            "{" + '"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "a"}' + "}"
        ),
        indent="\t",
    )
    assert load_documents(one, "-")[0]["metadata"]["name"] == "a"
    stream = one + "\n" + one.replace('"a"', '"b"')
    assert [d["metadata"]["name"] for d in load_documents(stream, "x.json")] == ["a", "b"]


def test_flow_style_yaml_that_is_not_json_still_loads() -> None:
    [doc] = load_documents("{kind: Namespace, metadata: {name: a}}\n", "flow.yaml")
    assert doc == {"kind": "Namespace", "metadata": {"name": "a"}}


@pytest.mark.parametrize(
    ("text", "source", "message"),
    [
        (
            "kind: Pod\nmetadata:\n  name: [a\n",
            "bad.yaml",
            "bad.yaml:4: invalid YAML: ",
        ),
        (
            "kind: Pod\nmetadata:\n  name: a\n   labels: {}\n",
            "indent.yaml",
            "indent.yaml:4: invalid YAML: mapping values are not allowed",
        ),
        (
            "kind: Pod\nmetadata:\n  name: a\n  name: b\n",
            "dup.yaml",
            'dup.yaml:4: invalid YAML: duplicate key "name"',
        ),
        (
            '{"kind": "Pod",}',
            "bad.json",
            "bad.json:1: invalid JSON: Expecting property name enclosed in double quotes",
        ),
        (
            NS.format(name="a") + "---\n- just\n- a list\n",
            "list.yaml",
            "list.yaml:6: document 2: expected an object, got array",
        ),
        (
            "just a string\n",
            "s.yaml",
            's.yaml:1: document 1: expected an object, got string "just a string"',
        ),
        (
            "kind: List\nitems: [1]\n",
            "l.yaml",
            "l.yaml:1: document 1: items[0]: expected an object, got integer 1",
        ),
    ],
)
def test_load_errors_name_source_and_line(text: str, source: str, message: str) -> None:
    """Parser wording differs between libyaml and pure-Python PyYAML, so syntax errors
    are checked up to the parser's own text; errors of ours are checked exactly."""
    with pytest.raises(LoadError) as info:
        load_documents(text, source)
    assert str(info.value).startswith(message)
    if "invalid YAML: " not in message or "duplicate" in message:
        assert str(info.value) == message
    assert info.value.source == source


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_load_sources_walks_directories_in_sorted_order(tmp_path: Path) -> None:
    write(tmp_path / "b.yaml", NS.format(name="b") + "---\n" + NS.format(name="b2"))
    write(tmp_path / "a.yml", NS.format(name="a"))
    write(tmp_path / "sub" / "c.json", json.dumps({"kind": "Namespace", "metadata": {"name": "c"}}))
    write(tmp_path / "a2" / "z.yaml", NS.format(name="z"))
    write(tmp_path / "notes.txt", "not a manifest")
    write(tmp_path / ".github" / "ci.yaml", "on: push\n")
    write(tmp_path / ".hidden.yaml", NS.format(name="hidden"))
    loaded = load_sources([str(tmp_path)], io.StringIO())
    assert [
        (Path(s).relative_to(tmp_path).as_posix(), d["metadata"]["name"]) for s, d in loaded
    ] == [
        ("a.yml", "a"),
        ("a2/z.yaml", "z"),
        ("b.yaml", "b"),
        ("b.yaml", "b2"),
        ("sub/c.json", "c"),
    ]


def test_load_sources_mixes_files_and_stdin_in_order(tmp_path: Path) -> None:
    file = write(tmp_path / "x.txt", NS.format(name="from-file"))
    stdin = io.StringIO(NS.format(name="from-stdin"))
    loaded = load_sources(["-", str(file)], stdin)
    assert [(s, d["metadata"]["name"]) for s, d in loaded] == [
        ("<stdin>", "from-stdin"),
        (str(file), "from-file"),
    ]


def test_load_sources_reports_missing_and_bad_files(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    with pytest.raises(LoadError) as info:
        load_sources([str(missing)], io.StringIO())
    assert str(info.value) == f"{missing}: no such file or directory"
    binary = tmp_path / "bin.yaml"
    binary.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(LoadError) as info:
        load_sources([str(binary)], io.StringIO())
    assert str(info.value) == f"{binary}: not UTF-8 text"
    broken = write(tmp_path / "d" / "broken.yaml", "a: [\n")
    with pytest.raises(LoadError) as info:
        load_sources([str(tmp_path / "d")], io.StringIO())
    assert str(info.value).startswith(f"{broken}:2: invalid YAML:")


def test_empty_directory_has_no_objects(tmp_path: Path) -> None:
    assert load_sources([str(tmp_path)], io.StringIO()) == []
