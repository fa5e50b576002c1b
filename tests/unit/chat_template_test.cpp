// ChatTemplate and the Jinja interpreter under it, with expected texts worked out from jinja2's rules
// (chat_template_oracle_test checks the same ground against jinja2 itself): whitespace control, scoping,
// Python values and printing, filters, tests and methods, refusals when a template is loaded (with the
// line), errors while rendering, the built-ins, where LoadForModel takes a template from, end-of-turn
// strings, and OpenAI message content.
#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "hf_fixtures.hpp"
#include "tandem/text/chat_template.hpp"
#include "tandem/text/tokenizer.hpp"
#include "test_env.hpp"

namespace tandem {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

const std::vector<ChatMessage> kConversation = {
    {"system", "Be brief."}, {"user", " Hi there "}, {"assistant", "Hello!"}, {"user", "Bye"}};

Result<std::string> RenderSource(const std::string& source,
                                 const std::vector<ChatMessage>& messages = kConversation,
                                 bool add_generation_prompt = true) {
  TANDEM_ASSIGN_OR_RETURN(const ChatTemplate tmpl, ChatTemplate::FromSource(source, "<s>", "</s>", "test"));
  return tmpl.Render(messages, add_generation_prompt);
}

std::string Rendered(const std::string& source) {
  Result<std::string> text = RenderSource(source);
  EXPECT_TRUE(text.ok()) << source << ": " << text.status().ToString();
  return text.ok() ? *text : "<error>";
}

std::string LoadError(const std::string& source) {
  Result<ChatTemplate> tmpl = ChatTemplate::FromSource(source, "", "", "test");
  EXPECT_FALSE(tmpl.ok()) << source;
  return tmpl.ok() ? "" : tmpl.status().message();
}

std::string RenderError(const std::string& source) {
  Result<std::string> text = RenderSource(source);
  EXPECT_FALSE(text.ok()) << source << " rendered " << (text.ok() ? *text : "");
  return text.ok() ? "" : text.status().message();
}

TEST(ChatTemplateTest, WhitespaceControlAsJinja2WithTrimAndLstripBlocks) {
  // lstrip_blocks drops the indentation before {% %}, trim_blocks the newline after; {{ }} keeps both.
  EXPECT_EQ(Rendered("  {% if 1 %}\n  a\n  {% endif %}\n  {{ 'b' }}  \n{# c #}\nd\n"), "  a\n  b  \nd");
  EXPECT_EQ(Rendered("a  {%- if 1 -%}  \n b {%+ endif +%}\nc"), "ab \nc");
  EXPECT_EQ(Rendered("x {#- comment -#} y"), "xy");
  EXPECT_EQ(Rendered("a\r\nb\n"), "a\nb");  // newlines normalized, one trailing newline dropped
}

TEST(ChatTemplateTest, ScopesAsJinja2) {
  // A for loop's iterations each see the outer value until they set their own; nothing leaks out of it.
  EXPECT_EQ(Rendered("{% set x = 0 %}{% for i in [1,2] %}{{ x }}{% set x = i %}{{ x }}|{% endfor %}{{ x }}"),
            "01|02|0");
  EXPECT_EQ(Rendered("{% if true %}{% set z = 5 %}{% endif %}{{ z }}"), "5");
  EXPECT_EQ(
      Rendered("{% set ns = namespace(n=0) %}{% for m in messages %}{% set ns.n = ns.n + 1 %}{% endfor %}"
               "{{ ns.n }}"),
      "4");
  EXPECT_EQ(Rendered("{% macro greet(name, p='!') %}Hi {{ name }}{{ p }}{% endmacro %}{{ greet('a') }} "
                     "{{ greet('b', p='?') }}"),
            "Hi a! Hi b?");
  EXPECT_EQ(Rendered("{% set t | trim | upper %}  hi  {% endset %}[{{ t }}]"), "[HI]");
}

TEST(ChatTemplateTest, LoopVariableAndControl) {
  EXPECT_EQ(Rendered("{% for m in messages %}{{ loop.index }}{{ loop.index0 }}{{ loop.revindex }}"
                     "{{ loop.first }}{{ loop.last }}{{ loop.length }},{% endfor %}"),
            "104TrueFalse4,213FalseFalse4,322FalseFalse4,431FalseTrue4,");
  EXPECT_EQ(Rendered("{% for m in messages if m.role == 'user' %}{{ loop.index }}{{ m.content }}"
                     "{% endfor %}"),
            "1 Hi there 2Bye");
  EXPECT_EQ(Rendered("{% for i in range(10) %}{% if i is odd %}{% continue %}{% endif %}"
                     "{% if i > 6 %}{% break %}{% endif %}{{ i }}{% endfor %}"),
            "0246");
  EXPECT_EQ(Rendered("{% for x in [] %}x{% else %}empty{% endfor %}"), "empty");
  EXPECT_EQ(Rendered("{% for k, v in {'a': 1, 'b': 2}.items() %}{{ k }}={{ v }};{% endfor %}"), "a=1;b=2;");
}

TEST(ChatTemplateTest, PythonValuesPrintAsPython) {
  EXPECT_EQ(Rendered("{{ [1, 'a', None, True, 1.5, {'k': \"it's\"}] }} {{ (1,) }}"),
            "[1, 'a', None, True, 1.5, {'k': \"it's\"}] (1,)");
  EXPECT_EQ(Rendered("{{ 1e20 }} {{ 1/3 }} {{ 10/2 }} {{ 1e16 }} {{ 1.0e15 }} {{ 1e-5 }} {{ -0.0 }}"),
            "1e+20 0.3333333333333333 5.0 1e+16 1000000000000000.0 1e-05 -0.0");
  EXPECT_EQ(
      Rendered("{{ -7 // 2 }} {{ -7 % 3 }} {{ 2 ** 10 }} {{ True + 1 }} {{ 'ab' * 2 }} {{ [1] + [2] }}"),
      "-4 2 1024 2 abab [1, 2]");
  EXPECT_EQ(Rendered("{{ x }}|{{ none }}|{{ true }}|{{ 'a' ~ 1 ~ none ~ x }}|{{ 'a' if false }}"),
            "|None|True|a1None|");
  EXPECT_EQ(Rendered("{{ messages[1:]|length }} {{ messages[-1].content }} {{ 'h\u00e9llo'[1] }} "
                     "{{ 'hello'[::-1] }}"),
            "3 Bye \u00e9 olleh");
  EXPECT_EQ(
      Rendered("{{ 1 < 2 < 3 }} {{ 'a' in 'abc' }} {{ 'z' not in ['a'] }} {{ 1 == 1.0 }} {{ [] or 'x' }}"),
      "True True True True x");
}

TEST(ChatTemplateTest, FiltersTestsAndMethods) {
  EXPECT_EQ(
      Rendered("{{ messages|selectattr('role', 'equalto', 'user')|map(attribute='content')|join('|') }}"),
      " Hi there |Bye");
  EXPECT_EQ(Rendered("{{ messages|rejectattr('role', 'eq', 'user')|list|length }} {{ messages|first|string "
                     "== messages[0]|string }}"),
            "2 True");
  EXPECT_EQ(
      Rendered("{{ '  x  '|trim }}|{{ 'a\nb'|indent(2, true) }}|{{ 'hello-world foo'|title }}|"
               "{{ 'stra\u00dfe'|upper }}|{{ ['A', 'a', 'b']|unique|list }}|{{ 2.5|round }}|{{ 'x'|int }}"),
      "x|  a\n  b|Hello-World Foo|STRASSE|['A', 'b']|2.0|0");
  EXPECT_EQ(Rendered("{{ {'a': '\u00e9\"\n', 'b': [1, 2.0, None, True]}|tojson }}"),
            "{\"a\": \"\u00e9\\\"\\n\", \"b\": [1, 2.0, null, true]}");
  EXPECT_EQ(Rendered("{{ {'a': [1]}|tojson(indent=2) }}"), "{\n  \"a\": [\n    1\n  ]\n}");
  EXPECT_EQ(Rendered("{{ x|default('d') }}{{ ''|default('e', true) }}{{ x is defined }}{{ none is none }}"
                     "{{ 4 is even }}{{ 'a' is string }}{{ {} is mapping }}{{ 1 is integer }}"),
            "deFalseTrueTrueTrueTrueTrue");
  EXPECT_EQ(
      Rendered(
          "{{ 'xxaxx'.strip('x') }}|{{ 'a b  c'.split() }}|{{ 'a,b'.split(',') }}|"
          "{{ 'aXbX'.replace('X', '-', 1) }}|{{ 'ab'.startswith(('x', 'a')) }}|{{ '{}-{}'.format(1, 2) }}|"
          "{{ messages[0].get('nope', 'dflt') }}|{{ '%s=%d' % ('a', 3) }}"),
      "a|['a', 'b', 'c']|['a', 'b']|a-bX|True|1-2|dflt|a=3");
}

TEST(ChatTemplateTest, RefusesWhatItDoesNotImplementWhenLoadedWithTheLine) {
  const std::string filter = LoadError("line one\n{{ x | nosuchfilter }}");
  EXPECT_NE(filter.find("unknown filter 'nosuchfilter'"), std::string::npos) << filter;
  EXPECT_NE(filter.find("line 2"), std::string::npos) << filter;
  EXPECT_NE(filter.find("test"), std::string::npos) << filter;  // the origin
  EXPECT_NE(LoadError("{% if x is nosuchtest %}{% endif %}").find("unknown test 'nosuchtest'"),
            std::string::npos);
  EXPECT_NE(LoadError("{{ 'a'.nosuchmethod() }}").find("unknown method 'nosuchmethod'"), std::string::npos);
  const std::string include = LoadError("\n\n{% include 'x' %}");
  EXPECT_NE(include.find("the 'include' tag is not supported"), std::string::npos) << include;
  EXPECT_NE(include.find("(line 3)"), std::string::npos) << include;
  EXPECT_NE(LoadError("{% do x %}").find("not supported"), std::string::npos);
  EXPECT_NE(LoadError("{% frobnicate %}").find("unknown tag 'frobnicate'"), std::string::npos);
  EXPECT_NE(LoadError("{% if x %}never closed").find("'{% endif %}' is missing"), std::string::npos);
  EXPECT_NE(LoadError("{{ 'unterminated }}").find("unterminated string"), std::string::npos);
  EXPECT_NE(LoadError("{# open comment").find("comment"), std::string::npos);
  EXPECT_NE(LoadError("{% break %}").find("outside a for loop"), std::string::npos);
  EXPECT_NE(LoadError("{{ (1, 2] }}").find("unexpected ']'"), std::string::npos);
}

TEST(ChatTemplateTest, RuntimeErrorsAreRenderErrorsWithTheMessage) {
  EXPECT_NE(RenderError("{{ raise_exception('Roles must alternate!') }}").find("Roles must alternate!"),
            std::string::npos);
  EXPECT_NE(RenderError("{{ 'a' + 1 }}").find("can only concatenate str"), std::string::npos);
  EXPECT_NE(RenderError("{{ x.y }}").find("'x' is undefined"), std::string::npos);
  EXPECT_NE(RenderError("{{ messages.append(1) }}").find("unsafe"), std::string::npos);  // immutable sandbox
  EXPECT_NE(RenderError("{{ 1 // 0 }}").find("ZeroDivisionError"), std::string::npos);
  EXPECT_NE(RenderError("{{ 9223372036854775807 + 1 }}").find("OverflowError"), std::string::npos);
  EXPECT_NE(RenderError("{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}").find("nest deeper"),
            std::string::npos);
  EXPECT_NE(RenderError("{{ range(200000)|length }}").find("MAX_RANGE"), std::string::npos);
}

// A hostile template file is an error, never a crash, a hang or an exhausted machine.
TEST(ChatTemplateTest, RunawayTemplatesAreRefusedNotRunToTheEnd) {
  const auto repeated = [](const std::string& piece, int times) {
    std::string text;
    for (int i = 0; i < times; ++i) text += piece;
    return text;
  };
  // Deeper than the stack should go: nested brackets, unary operators, blocks, and long left-deep chains.
  EXPECT_NE(LoadError("{{ " + repeated("(", 5000) + "1" + repeated(")", 5000) + " }}").find("nests deeper"),
            std::string::npos);
  EXPECT_NE(LoadError("{{ " + repeated("not ", 5000) + "x }}").find("nests deeper"), std::string::npos);
  EXPECT_NE(LoadError(repeated("{% if x %}", 5000) + repeated("{% endif %}", 5000)).find("nests deeper"),
            std::string::npos);
  EXPECT_NE(LoadError("{{ x" + repeated(".a", 100000) + " }}").find("nests deeper"), std::string::npos);
  EXPECT_NE(LoadError("{{ x" + repeated(" + x", 100000) + " }}").find("nests deeper"), std::string::npos);
  EXPECT_NE(LoadError("{{ x" + repeated("|trim", 100000) + " }}").find("nests deeper"), std::string::npos);
  // Work and memory: nested loops that print nothing, and values that grow past 64 MiB.
  EXPECT_NE(RenderError("{% for a in range(100000) %}{% for b in range(100000) %}{% endfor %}{% endfor %}")
                .find("a million steps"),
            std::string::npos);
  EXPECT_NE(RenderError("{{ 'x' * 100000000000 }}").find("64 MiB"), std::string::npos);
  // Doubling a string: refused by the size bound or, having made 128 MB of strings, the work bound.
  const std::string doubling = RenderError(
      "{% set ns = namespace(s='xxxxxxxx') %}{% for i in range(40) %}{% set ns.s = ns.s ~ ns.s %}{% endfor "
      "%}");
  EXPECT_TRUE(doubling.find("64 MiB") != std::string::npos ||
              doubling.find("too much work") != std::string::npos)
      << doubling;
  EXPECT_NE(
      RenderError(
          "{{ ('x' * 1000000).replace('', "
          "'yyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyy') }}")
          .find("64 MiB"),
      std::string::npos);
  EXPECT_NE(RenderError("{{ (['x' * 1000000] * 100) | join }}").find("64 MiB"), std::string::npos);
  // Work within one step: walking a long string character by character, a quadratic `unique`.
  EXPECT_NE(RenderError("{{ ('xy' * 3000000) | sort | first }}").find("too much work"), std::string::npos);
  EXPECT_NE(RenderError("{{ range(5000) | unique | length }}").find("too much work"), std::string::npos);
  EXPECT_EQ(Rendered("{{ ('ba' * 1000) | sort | first }}{{ range(500) | unique | length }}"), "a500");
  // A namespace that holds itself prints as jinja2 prints it (no endless recursion, and no leak: LSan
  // in the fuzz build watches that).
  EXPECT_EQ(Rendered("{% set ns = namespace(n=0) %}{% set ns.n = ns, 2 %}{{ ns }}"),
            "<Namespace {'n': (<Namespace {...}>, 2)}>");
  // Within the bounds, the same constructs render.
  EXPECT_EQ(Rendered("{{ " + repeated("(", 100) + "1" + repeated(")", 100) + " }}"), "1");
  EXPECT_EQ(Rendered("{{ 'ab' * 3 }}"), "ababab");
}

TEST(ChatTemplateTest, BuiltinsRenderTheirFamilysPrompts) {
  ASSERT_EQ(ChatTemplate::BuiltinNames().size(), 5u);
  const auto render = [](std::string_view name, const std::string& bos, const std::string& eos,
                         const std::vector<ChatMessage>& messages) {
    Result<ChatTemplate> tmpl = ChatTemplate::FromSource(std::string(*ChatTemplate::BuiltinSource(name)), bos,
                                                         eos, std::string(name));
    EXPECT_TRUE(tmpl.ok()) << name << ": " << tmpl.status().ToString();
    Result<std::string> text = tmpl->Render(messages, true);
    return text.ok() ? *text : "error: " + text.status().message();
  };
  const std::vector<ChatMessage> chat = {{"system", "S"}, {"user", " U "}};
  EXPECT_EQ(render("llama3", "<|begin_of_text|>", "<|eot_id|>", chat),
            "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nS<|eot_id|>"
            "<|start_header_id|>user<|end_header_id|>\n\nU<|eot_id|><|start_header_id|>assistant<|end_header_"
            "id|>\n\n");
  EXPECT_EQ(render("llama2", "<s>", "</s>", chat), "<s>[INST] <<SYS>>\nS\n<</SYS>>\n\n U [/INST]");
  EXPECT_EQ(render("chatml", "", "<|im_end|>", {{"user", "U"}}),
            "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nU<|im_end|>\n"
            "<|im_start|>assistant\n");
  EXPECT_EQ(render("phi3", "<s>", "<|endoftext|>", chat),
            "<|system|>\nS<|end|>\n<|user|>\n U <|end|>\n<|assistant|>\n");
  EXPECT_EQ(render("mistral", "<s>", "</s>", {{"user", "U"}, {"assistant", "A"}, {"user", "V"}}),
            "<s>[INST] U [/INST]A</s>[INST] V [/INST]");
  EXPECT_EQ(
      render("mistral", "<s>", "</s>", chat),
      "error: chat template mistral: Conversation roles must alternate user/assistant/user/assistant/...");
  EXPECT_EQ(render("mistral", "<s>", "</s>", {{"user", "U"}, {"system", "S"}}),
            "error: chat template mistral: Only user and assistant roles are supported!");
}

TEST(ChatTemplateTest, EndOfTurnIsEosAndTheMarkersTheTemplateWrites) {
  Result<ChatTemplate> llama3 = ChatTemplate::FromSource(std::string(*ChatTemplate::BuiltinSource("llama3")),
                                                         "<|begin_of_text|>", "<|end_of_text|>", "x");
  ASSERT_TRUE(llama3.ok());
  EXPECT_EQ(llama3->end_of_turn(), (std::vector<std::string>{"<|end_of_text|>", "<|eot_id|>"}));
  Result<ChatTemplate> chatml =
      ChatTemplate::FromSource(std::string(*ChatTemplate::BuiltinSource("chatml")), "", "<|im_end|>", "x");
  ASSERT_TRUE(chatml.ok());
  EXPECT_EQ(chatml->end_of_turn(), (std::vector<std::string>{"<|im_end|>"}));
  EXPECT_EQ(chatml->origin(), "x");
}

class LoadForModelTest : public ::testing::Test {
 protected:
  Tokenizer WriteModel(const std::string& chat_template) {
    testing::WriteChatModelDir(dir_.path(), {.chat_template = chat_template,
                                             .bos_token = "<s>",
                                             .eos_token = {{"content", "</s>"}},
                                             .special_tokens = {"<unk>", "<s>", "</s>"}});
    Result<Tokenizer> tokenizer = Tokenizer::LoadForModel(dir_.path().string(), "", 259);
    EXPECT_TRUE(tokenizer.ok()) << tokenizer.status().ToString();
    return *tokenizer;
  }
  std::string Render(const std::string& flag, const Tokenizer& tokenizer) {
    Result<std::optional<ChatTemplate>> loaded =
        ChatTemplate::LoadForModel(dir_.path().string(), flag, tokenizer);
    EXPECT_TRUE(loaded.ok()) << loaded.status().ToString();
    if (!loaded.ok() || !loaded->has_value()) return "<none>";
    const std::vector<ChatMessage> messages = {{"user", "u"}};
    Result<std::string> text = (*loaded)->Render(messages, false);
    return text.ok() ? *text : text.status().message();
  }
  testing::TempDir dir_;
};

TEST_F(LoadForModelTest, TakesTheFlagThenChatTemplateJinjaThenTokenizerConfig) {
  const Tokenizer tokenizer = WriteModel("config:{{ bos_token }}{{ messages[0].content }}{{ eos_token }}");
  EXPECT_EQ(Render("", tokenizer), "config:<s>u</s>");
  testing::WriteBytes(dir_ / "chat_template.jinja", "jinja:{{ messages[0].content }}");
  EXPECT_EQ(Render("", tokenizer), "jinja:u");
  EXPECT_EQ(Render("chatml", tokenizer),
            "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
            "<|im_start|>user\nu<|im_end|>\n");
  const fs::path file = dir_ / "other.jinja";
  testing::WriteBytes(file, "file:{{ messages|length }}");
  EXPECT_EQ(Render(file.string(), tokenizer), "file:1");
  const fs::path config = dir_ / "other_config.json";
  testing::WriteBytes(config,
                      json({{"chat_template", json::array({{{"name", "tool_use"}, {"template", "t"}},
                                                           {{"name", "default"}, {"template", "d"}}})}})
                          .dump());
  EXPECT_EQ(Render(config.string(), tokenizer), "d");
}

TEST_F(LoadForModelTest, NoneWithoutATemplateAndErrorsNamingTheSource) {
  const Tokenizer tokenizer = WriteModel("");
  testing::WriteBytes(dir_ / "tokenizer_config.json", R"({"bos_token": "<s>"})");
  Result<std::optional<ChatTemplate>> none = ChatTemplate::LoadForModel(dir_.path().string(), "", tokenizer);
  ASSERT_TRUE(none.ok()) << none.status().ToString();
  EXPECT_FALSE(none->has_value());
  Result<std::optional<ChatTemplate>> bad_flag =
      ChatTemplate::LoadForModel(dir_.path().string(), "nope", tokenizer);
  ASSERT_FALSE(bad_flag.ok());
  EXPECT_NE(
      bad_flag.status().message().find("neither a built-in template (llama3 llama2 mistral chatml phi3)"),
      std::string::npos)
      << bad_flag.status().message();
  testing::WriteBytes(dir_ / "chat_template.jinja", "{{ x | nosuch }}");
  Result<std::optional<ChatTemplate>> bad = ChatTemplate::LoadForModel(dir_.path().string(), "", tokenizer);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("chat_template.jinja"), std::string::npos) << bad.status().message();
  EXPECT_NE(bad.status().message().find("unknown filter 'nosuch'"), std::string::npos);
}

TEST(ChatContentTest, StringsAndTextPartsJoinedWithNewlines) {
  EXPECT_EQ(*ChatContentText(json("plain")), "plain");
  EXPECT_EQ(
      *ChatContentText(json::parse(R"([{"type": "text", "text": "a"}, {"type": "text", "text": "b"}])")),
      "a\nb");
  EXPECT_EQ(*ChatContentText(json::array()), "");
  EXPECT_NE(ChatContentText(json(nullptr)).status().message().find("string or an array"), std::string::npos);
  EXPECT_NE(ChatContentText(json::parse(R"([{"type": "image_url", "image_url": {}}])"))
                .status()
                .message()
                .find("'image_url' is not supported"),
            std::string::npos);
  EXPECT_NE(
      ChatContentText(json::parse(R"([{"type": "text"}])")).status().message().find("text must be a string"),
      std::string::npos);
  Result<std::vector<ChatMessage>> messages =
      ChatMessagesFromJson(json::parse(R"([{"role": "user", "content": [{"type": "text", "text": "x"}]}])"));
  ASSERT_TRUE(messages.ok());
  EXPECT_EQ((*messages)[0].role, "user");
  EXPECT_EQ((*messages)[0].content, "x");
  EXPECT_NE(ChatMessagesFromJson(json::parse(R"([{"role": "user"}, {"content": "x"}])"))
                .status()
                .message()
                .find("messages[0] has no content"),
            std::string::npos);
  EXPECT_NE(ChatMessagesFromJson(json::parse(R"([{"role": 1, "content": "x"}])"))
                .status()
                .message()
                .find("messages[0].role must be a string"),
            std::string::npos);
}

}  // namespace
}  // namespace tandem
