#!/usr/bin/python3
"""The oracle for Tandem's chat templates: renders a model directory's chat template with Python's jinja2,
as transformers' apply_chat_template(messages, tokenize=False, add_generation_prompt=...) does.

Usage: render_chat_template.py MODEL_DIR|TEMPLATE_FILE MESSAGES.json [--no-generation-prompt]
A directory's template is its chat_template.jinja, else its tokenizer_config.json "chat_template" (a
string, or the "default" of a list of {"name", "template"}); bos_token / eos_token come from that
tokenizer_config.json (a string or {"content": ...}; left out when null or absent, as transformers'
special_tokens_map leaves them out). A file given instead of a directory is the Jinja source itself.
Prints the rendered prompt exactly (no newline added); the error on stderr and exit 2 when the template
does not compile, exit 1 when rendering raises (as `tandem chat-template` exits).

The environment is transformers' (chat_template_utils._compile_jinja_template): an
ImmutableSandboxedEnvironment with trim_blocks, lstrip_blocks, loopcontrols and {% generation %}, the globals
raise_exception and strftime_now, and tojson as json.dumps(ensure_ascii=False, indent=..., sort_keys=False).
render() gets messages, tools=None, documents=None, add_generation_prompt and the special tokens.
"""
import json
import os
import sys
from datetime import datetime

import jinja2
from jinja2 import nodes
from jinja2.ext import Extension, loopcontrols
from jinja2.sandbox import ImmutableSandboxedEnvironment


class AssistantTracker(Extension):
    """transformers' {% generation %} ... {% endgeneration %}: renders its body (the assistant-mask
    bookkeeping is left out)."""

    tags = {"generation"}

    def parse(self, parser):
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
        return nodes.CallBlock(self.call_method("_render"), [], [], body).set_lineno(lineno)

    def _render(self, caller):
        return caller()


def raise_exception(message):
    raise jinja2.exceptions.TemplateError(message)


def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


def strftime_now(format):
    return datetime.now().strftime(format)


def token_text(value):
    if isinstance(value, dict):
        value = value.get("content")
    return value if isinstance(value, str) else None


def load(path):
    if not os.path.isdir(path):
        with open(path, encoding="utf-8") as f:
            return f.read(), {}
    config = {}
    config_path = os.path.join(path, "tokenizer_config.json")
    if os.path.exists(config_path):
        with open(config_path, encoding="utf-8") as f:
            config = json.load(f)
    jinja_path = os.path.join(path, "chat_template.jinja")
    if os.path.exists(jinja_path):
        with open(jinja_path, encoding="utf-8") as f:
            source = f.read()
    else:
        source = config["chat_template"]
        if isinstance(source, list):
            source = next(t["template"] for t in source if t["name"] == "default")
    tokens = {}
    for name in ("bos_token", "eos_token"):
        text = token_text(config.get(name))
        if text is not None:
            tokens[name] = text
    return source, tokens


def main():
    if len(sys.argv) not in (3, 4):
        print(__doc__, file=sys.stderr)
        return 2
    source, tokens = load(sys.argv[1])
    with open(sys.argv[2], encoding="utf-8") as f:
        messages = json.load(f)
    add_generation_prompt = "--no-generation-prompt" not in sys.argv[3:]
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[AssistantTracker, loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    try:
        template = env.from_string(source)
    except jinja2.exceptions.TemplateSyntaxError as error:  # refused when loaded, as tandem's exit 2
        print(f"{type(error).__name__}: {error}", file=sys.stderr)
        return 2
    try:
        text = template.render(
            messages=messages, tools=None, documents=None, add_generation_prompt=add_generation_prompt, **tokens
        )
    except Exception as error:  # the template's own refusal, or any other error while rendering
        print(f"{type(error).__name__}: {error}", file=sys.stderr)
        return 1
    sys.stdout.buffer.write(text.encode("utf-8"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
