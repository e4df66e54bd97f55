"""The configuration key table (src/common/configkeys.c) is the one list of keys
(issue 18): the code reads no key it lacks, each reader's fallback is the
table's default, the documentation generated from it (keel.yaml(5), the
example /etc/keel/keel.yaml, docs/configuration.md) has not drifted, and keeld
refuses what the table refuses, naming the file, the line and the dotted key."""
import json
import os
import re
import subprocess

import pytest

from conftest import BUILD, KEELD, ROOT, command, scaled

CONFIGDOC = os.path.join(BUILD, "configdoc")


def configdoc(mode):
    out = subprocess.run([CONFIGDOC, mode], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    return out.stdout


@pytest.fixture(scope="module")
def table():
    return {k["name"]: k for k in json.loads(configdoc("json"))}


def keeld_check(*args, env=None, cwd=None):
    environment = dict(os.environ)
    for name in ("PORT_OFFSET", "KEEL_CONFIG", "KEEL_DATA_DIR", "KEEL_BIND", "SECURE_ZMQ",
                 "KEEL_LOG_LEVEL"):
        environment.pop(name, None)
    environment.update(env or {})
    return subprocess.run(command([KEELD, "all", "--check"] + list(args)), capture_output=True,
                          text=True, env=environment, timeout=scaled(30), cwd=cwd)


# -- the code reads only keys of the table, with the table's defaults ---------
READERS = re.compile(r"\b(config_str|config_int|config_double|config_bool|config_get|cfg_double"
                     r"|endpoint_for|endpoint_or)\s*\(")
# Helpers that prefix their key: errorbus.c's cfg_double and endpoint_for.
PREFIXED = {"cfg_double": "errorbus.", "endpoint_for": "errorbus."}


def split_args(text, start):
    """The arguments of the call whose '(' is at text[start-1], as strings."""
    depth, args, current, i = 1, [], "", start
    while depth and i < len(text):
        c = text[i]
        if c == '"':
            end = i + 1
            while text[end] != '"':
                end += 2 if text[end] == "\\" else 1
            current += text[i:end + 1]
            i = end + 1
            continue
        if c in "([":
            depth += 1
        elif c in ")]":
            depth -= 1
            if depth == 0:
                break
        if c == "," and depth == 1:
            args.append(current.strip())
            current = ""
        else:
            current += c
        i += 1
    args.append(current.strip())
    return args


def key_reads():
    """(key, fallback text or None, where) of every literal key the sources read,
    fallbacks that are themselves calls included."""
    reads = []
    for folder, _, files in os.walk(os.path.join(ROOT, "src")):
        for name in files:
            if not name.endswith(".c"):
                continue
            path = os.path.join(folder, name)
            with open(path) as f:
                text = f.read()
            for m in READERS.finditer(text):
                args = split_args(text, m.end())
                if len(args) < 2 or not re.fullmatch(r'"[^"%]+"', args[1]):
                    continue
                key = PREFIXED.get(m.group(1), "") + args[1][1:-1]
                fallback = args[2] if len(args) > 2 and m.group(1) not in ("endpoint_for",
                                                                            "endpoint_or") else None
                where = "%s:%d" % (os.path.relpath(path, ROOT), text.count("\n", 0, m.start()) + 1)
                reads.append((key, fallback, where))
    return reads


BREAKER_KEYS = ("failures", "reset_s", "max_reset_s", "half_open_probes")


def formatted_keys():
    """Keys built with snprintf ("modules.%s.mode"), as table patterns, and
    the four keys breaker_limits_read reads under each prefix it is given."""
    found = []
    for folder, _, files in os.walk(os.path.join(ROOT, "src")):
        for name in files:
            if name.endswith(".c"):
                with open(os.path.join(folder, name)) as f:
                    text = f.read()
                for m in re.finditer(r'snprintf\([^;]*?"((?:modules|core|resource|observability'
                                     r'|errorbus|security)\.[a-z_.%]*%s[a-z_.%]*)"', text):
                    found.append((m.group(1).replace("%s", "*"), name))
                for m in re.finditer(r'breaker_limits_read\([^,]+, "([a-z_.]+)"\)', text):
                    found += [("%s.%s" % (m.group(1), k), name) for k in BREAKER_KEYS]
    return found


def literal(text):
    """The value of a literal fallback, or None when it is computed."""
    text = text.strip()
    if re.fullmatch(r'"[^"]*"', text):
        return text[1:-1]
    if text in ("true", "false"):
        return text == "true"
    m = re.fullmatch(r"(\d+) << (\d+)", text)
    if m:
        return int(m.group(1)) << int(m.group(2))
    try:
        return float(text)
    except ValueError:
        return None


def test_every_key_the_code_reads_is_in_the_table_with_its_default(table):
    reads = key_reads()
    assert len(reads) > 180
    missing = sorted({"%s (%s)" % (key, where) for key, _, where in reads if key not in table})
    assert not missing, "keys read but not in src/common/configkeys.c: %s" % missing
    differ = []
    for key, fallback, where in reads:
        value = literal(fallback) if fallback else None
        default = table[key]["default"]
        if value is None or default is None:
            continue
        same = (value == default if isinstance(value, (str, bool)) or isinstance(default, (str, bool))
                else abs(float(value) - float(default)) < 1e-9)
        if not same:
            differ.append("%s: reader says %r, table says %r (%s)" % (key, value, default, where))
    assert not differ, "\n".join(differ)


def test_keys_built_at_run_time_match_a_pattern(table):
    found = formatted_keys()
    assert any(p == "modules.*.mode" for p, _ in found)
    unknown = [(p, f) for p, f in found if p not in table and not p.endswith(".*")]
    assert not unknown, unknown


def test_every_table_key_is_read_somewhere(table):
    """A key nobody reads would be accepted and do nothing: the operator is lied to."""
    read = {key for key, _, _ in key_reads()} | {p for p, _ in formatted_keys()}
    with open(os.path.join(ROOT, "src", "cmd", "keeld.c")) as f:
        read |= set(re.findall(r'"([a-z_]+)"', f.read()))
    unread = []
    for name, k in table.items():
        if k["type"] == "mapping" or "[]" in name or name.startswith("modules.") \
                or name.endswith(".*"):
            continue                    # groups, list items (read by name), patterns
        if name not in read:
            unread.append(name)
    assert not unread, "in the table, read nowhere: %s" % unread


# -- the generated documentation has not drifted ------------------------------
@pytest.mark.parametrize("mode,path", [("man", "man/keel.yaml.5"), ("yaml", "deploy/keel.yaml")])
def test_generated_files_match_the_table(mode, path):
    with open(os.path.join(ROOT, path)) as f:
        committed = f.read()
    assert committed == configdoc(mode), "%s differs from the key table: run make config-docs" % path


def test_configuration_md_table_matches_the_table():
    with open(os.path.join(ROOT, "docs", "configuration.md")) as f:
        text = f.read()
    section = text.split("<!-- keys: generated by make config-docs -->\n", 1)[1]
    section = section.split("<!-- end of keys -->\n", 1)[0]
    assert section == configdoc("markdown"), "docs/configuration.md: run make config-docs"


def test_man_page_documents_every_key(table):
    with open(os.path.join(ROOT, "man", "keel.yaml.5")) as f:
        page = f.read().replace("\\-", "-").replace("\\fI<name>\\fB", "*")
    for name in table:
        assert "\n.B %s\n" % name in page or "\n.SS %s\n" % name in page, name


def test_example_configuration_passes_and_shows_every_default(table, tmp_path):
    path = os.path.join(ROOT, "deploy", "keel.yaml")
    out = keeld_check("--config", path)
    assert out.returncode == 0, out.stderr
    with open(path) as f:
        example = f.read()
    for name, k in table.items():
        if k["default"] is None or "[]" in name or "*" in name or k["type"] == "mapping":
            continue
        indent = "  " * name.count(".")
        leaf = name.rsplit(".", 1)[-1]
        assert re.search(r"^%s#?%s: " % (indent, re.escape(leaf)), example, re.M), name


@pytest.mark.parametrize("name", ["mainpc.yaml", "pc2.yaml"])
def test_shipped_configurations_pass(name):
    out = keeld_check("--config", os.path.join(ROOT, "config", name))
    assert out.returncode == 0, out.stderr


# -- keeld refuses what the table refuses ---------------------------------------
def test_nested_typo_is_refused_with_file_line_and_key(tmp_path):
    """Issue 18: `security: lockout: {windw_s: 900}` was accepted with 'configuration OK'."""
    path = tmp_path / "keel.yaml"
    path.write_text("bind: 127.0.0.1\nsecurity:\n  lockout: {windw_s: 900}\n")
    out = keeld_check("--config", str(path))
    assert out.returncode == 2
    assert "%s:3: unknown key 'security.lockout.windw_s' (did you mean 'window_s'?)" % path \
        in out.stderr
    assert "configuration OK" not in out.stdout


@pytest.mark.parametrize("offset", ["99999", "-5", "38534"])
def test_port_offset_out_of_range_is_refused(offset):
    """Issue 18: --port-offset 99999 and -5 were accepted."""
    out = keeld_check("--port-offset", offset)
    assert out.returncode == 2
    assert "flag --port-offset: key 'port_offset': %s is out of range 0..38533" % offset \
        in out.stderr
    out = keeld_check(env={"PORT_OFFSET": offset})
    assert out.returncode == 2
    assert "environment PORT_OFFSET: key 'port_offset': %s is out of range" % offset in out.stderr


def test_highest_port_offset_is_accepted():
    assert keeld_check("--port-offset", "38533").returncode == 0


def test_value_out_of_range_in_a_list_item_is_refused(tmp_path):
    path = tmp_path / "keel.yaml"
    path.write_text("observability:\n  agents:\n    - {name: A, port: 7200}\n"
                    "    - name: B\n      port: 70000\n")
    out = keeld_check("--config", str(path))
    assert out.returncode == 2
    assert "%s:5: key 'observability.agents[1].port': 70000 is out of range 0..65535" % path \
        in out.stderr
