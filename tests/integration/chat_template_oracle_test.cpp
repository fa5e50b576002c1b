// `tandem chat-template` against Python's jinja2 (Debian's python3-jinja2, the engine Hugging Face uses):
// tiny Llama-3-, Qwen2- and Mistral-style model directories with each family's template in
// tokenizer_config.json and the family's bos/eos tokens, 24 conversations each, with and without the
// generation prompt, through the CLI (Mistral's v0.3-style template, which takes a system message). The same
// with the families' other templates (Llama 3.1, Qwen2.5, Mistral v0.1, which refuses system messages),
// the other built-ins, and the Jinja snippets of
// tests/support/chat_templates/snippets.txt run through ChatTemplate in this process (each `tandem` start
// loads LibTorch's initializers: hundreds of runs would take minutes). The oracle is
// tests/support/render_chat_template.py, which renders as transformers' apply_chat_template does. A
// conversation the template refuses must be refused by both; a template jinja2 does not compile must be
// refused when tandem loads it.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "hf_fixtures.hpp"
#include "tandem/text/chat_template.hpp"
#include "tandem/text/tokenizer.hpp"
#include "test_env.hpp"

namespace tandem {
namespace {

namespace fs = std::filesystem;
// Messages keep their keys in the order written ("role" before "content"), as clients send them and as
// ChatTemplate builds them: jinja2 prints a dict in that order.
using json = nlohmann::ordered_json;
using testing::ChatModelFiles;
using testing::RunProgram;
using testing::TempDir;

constexpr const char* kPython = "/usr/bin/python3";

std::string ReadText(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

json Message(const std::string& role, const std::string& content) {
  return {{"role", role}, {"content", content}};
}

// 24 conversations: with and without a system message, one to three turns, ending with the user or the
// assistant; unicode (accents, CJK, emoji), quotes, backslashes, Jinja syntax as text, newlines, and
// leading/trailing spaces the templates trim or keep.
std::vector<json> Conversations() {
  const std::vector<std::string> users = {
      "Hello!",
      "  leading and trailing spaces  ",
      "Line one\nLine two\n\nLine four\n",
      "Quotes: \"double\" and 'single', back\\slash",
      "Unicode: caf\u00e9, \u4e2d\u6587, \u65e5\u672c\u8a9e, emoji \U0001F600\U0001F680",
      "{{ 7 * 7 }} {% if true %}not a tag{% endif %} {# no comment #}",
      "\ttabbed\t",
      ""};
  const std::vector<std::string> assistants = {"Hi, how can I help?", " Sure.\n", "\u00c7a va \U0001F44D",
                                               "<b>markup</b> & \"entities\""};
  const std::vector<std::string> systems = {"You are a helpful assistant.", "  Be brief.\nAnswer in French. ",
                                            "R\u00e8gles: \u5b89\u5168\u7b2c\u4e00 \U0001F512"};
  std::vector<json> conversations;
  for (int i = 0; i < 24; ++i) {
    json messages = json::array();
    const bool with_system = i % 3 != 0;
    if (with_system) messages.push_back(Message("system", systems[i % systems.size()]));
    const int turns = 1 + i % 3;
    for (int t = 0; t < turns; ++t) {
      messages.push_back(Message("user", users[(i + t) % users.size()]));
      const bool last = t == turns - 1;
      if (!last || i % 4 == 1)
        messages.push_back(Message("assistant", assistants[(i + t) % assistants.size()]));
    }
    conversations.push_back(std::move(messages));
  }
  return conversations;
}

struct Family {
  std::string name;
  json bos_token;
  json eos_token;
  std::vector<std::string> special_tokens;
  std::vector<std::string> templates;  // built-in names, or files under tests/support/chat_templates
};

std::vector<Family> Families() {
  return {
      {"llama3",
       "<|begin_of_text|>",
       "<|eot_id|>",
       {"<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"},
       {"llama3", "llama3.1.jinja"}},
      {"qwen2",
       nullptr,
       "<|im_end|>",
       {"<|endoftext|>", "<|im_start|>", "<|im_end|>"},
       {"chatml", "qwen2.5.jinja"}},
      {"mistral",
       {{"content", "<s>"}, {"lstrip", false}},
       "</s>",
       {"<unk>", "<s>", "</s>"},
       {"mistral-v0.3.jinja", "mistral"}},
      {"llama2", "<s>", "</s>", {"<unk>", "<s>", "</s>"}, {"llama2"}},
      {"phi3",
       "<s>",
       "<|endoftext|>",
       {"<s>", "<|endoftext|>", "<|end|>", "<|user|>", "<|assistant|>"},
       {"phi3"}},
  };
}

class ChatTemplateOracleTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!fs::exists(kPython) || RunProgram(kPython, {"-c", "import jinja2"}).exit_code != 0) {
      GTEST_SKIP() << kPython << " cannot import jinja2 (Debian's python3-jinja2): the oracle is missing";
    }
    oracle_ = testing::SourceDir() / "tests" / "support" / "render_chat_template.py";
    templates_ = testing::SourceDir() / "tests" / "support" / "chat_templates";
    ASSERT_TRUE(fs::exists(oracle_)) << oracle_;
  }

  std::string TemplateSource(const std::string& name) const {
    if (std::optional<std::string_view> builtin = ChatTemplate::BuiltinSource(name))
      return std::string(*builtin);
    return ReadText(templates_ / name);
  }

  // How tandem renders: through the CLI, or through ChatTemplate in this process.
  enum class Renderer { kCli, kLibrary };

  // `tandem chat-template`'s exit code and output, or the same from ChatTemplate: 2 when the template is
  // refused at load, 1 when rendering fails.
  static testing::CommandResult RenderInProcess(const fs::path& model_dir, const json& messages,
                                                bool generation_prompt) {
    testing::CommandResult result;
    const auto fail = [&](int code, const Status& status) {
      result.exit_code = code;
      result.err = status.ToString();
      return result;
    };
    Result<Tokenizer> tokenizer = Tokenizer::LoadForModel(model_dir.string(), "", 1 << 20);
    if (!tokenizer.ok()) return fail(2, tokenizer.status());
    Result<std::optional<ChatTemplate>> tmpl = ChatTemplate::LoadForModel(model_dir.string(), "", *tokenizer);
    if (!tmpl.ok()) return fail(2, tmpl.status());
    if (!tmpl->has_value()) return fail(2, InvalidArgument("no template"));
    Result<std::vector<ChatMessage>> parsed = ChatMessagesFromJson(nlohmann::json::parse(messages.dump()));
    if (!parsed.ok()) return fail(2, parsed.status());
    Result<std::string> text = (*tmpl)->Render(*parsed, generation_prompt);
    if (!text.ok()) return fail(1, text.status());
    result.exit_code = 0;
    result.out = *text;
    return result;
  }

  // Renders `messages` in `model_dir` with both and expects the same text, or a refusal by both.
  // Returns whether the template refused.
  bool ExpectSameRendering(Renderer renderer, const fs::path& model_dir, const json& messages,
                           bool generation_prompt, const std::string& what) {
    const fs::path messages_file = dir_ / "messages.json";
    testing::WriteBytes(messages_file, messages.dump());
    std::vector<std::string> tandem_args = {"chat-template", "--model", model_dir.string(), "--messages",
                                            messages_file.string()};
    std::vector<std::string> oracle_args = {oracle_.string(), model_dir.string(), messages_file.string()};
    if (!generation_prompt) {
      tandem_args.emplace_back("--no-generation-prompt");
      oracle_args.emplace_back("--no-generation-prompt");
    }
    const testing::CommandResult ours = renderer == Renderer::kCli
                                            ? RunProgram("tandem", tandem_args)
                                            : RenderInProcess(model_dir, messages, generation_prompt);
    const testing::CommandResult python = RunProgram(kPython, oracle_args);
    const std::string context = what + ", generation prompt " + (generation_prompt ? "on" : "off") +
                                ", messages " + messages.dump() + "\njinja2 stderr: " + python.err +
                                "\ntandem stderr: " + ours.err;
    EXPECT_TRUE(python.exit_code >= 0 && python.exit_code <= 2) << context;
    if (python.exit_code != 0) {
      // 2: the template does not compile (tandem refuses it when loading); 1: rendering raised.
      EXPECT_EQ(ours.exit_code, python.exit_code) << "jinja2 refuses, tandem must too: " << context;
      EXPECT_FALSE(ours.err.empty()) << context;
      return true;
    }
    EXPECT_EQ(ours.exit_code, 0) << context;
    EXPECT_EQ(ours.out, python.out) << context;
    return false;
  }

  void WriteModel(const fs::path& dir, const Family& family, const std::string& source) const {
    testing::WriteChatModelDir(dir, ChatModelFiles{.chat_template = source,
                                                   .bos_token = family.bos_token,
                                                   .eos_token = family.eos_token,
                                                   .special_tokens = family.special_tokens});
  }

  // The family's templates (from index `first_template` on) over `count` conversations, each with and
  // without the generation prompt.
  void RunFamily(Renderer renderer, const std::string& name, size_t first_template, size_t count) {
    for (const Family& family : Families()) {
      if (family.name != name) continue;
      for (size_t t = first_template; t < family.templates.size(); ++t) {
        const std::string& tmpl = family.templates[t];
        const fs::path model_dir = dir_ / (family.name + "-" + tmpl);
        WriteModel(model_dir, family, TemplateSource(tmpl));
        const std::vector<json> conversations = Conversations();
        int rendered = 0;
        for (size_t i = 0; i < conversations.size() && i < count; ++i) {
          for (const bool generation_prompt : {true, false}) {
            // Each CLI run starts LibTorch (~0.4 s): half the conversations skip the run without the prompt.
            if (renderer == Renderer::kCli && !generation_prompt && i % 2 == 0) continue;
            const bool refused = ExpectSameRendering(renderer, model_dir, conversations[i], generation_prompt,
                                                     family.name + " " + tmpl);
            rendered += refused ? 0 : 1;
          }
        }
        // Most conversations render (Mistral v0.1 refuses every one with a system message): the comparison
        // is of text, not only of refusals.
        EXPECT_GE(rendered, static_cast<int>(count / 2)) << family.name << " " << tmpl;
      }
    }
  }

  TempDir dir_;
  fs::path oracle_;
  fs::path templates_;
};

// The acceptance: each family's first template through `tandem chat-template` (Mistral's v0.3 style, which
// takes a system message; v0.1, which refuses one, runs with the later templates).
TEST_F(ChatTemplateOracleTest, Llama3FamilyCliMatchesJinja2) {
  RunFamily(Renderer::kCli, "llama3", 0, 24);
}

TEST_F(ChatTemplateOracleTest, Qwen2FamilyCliMatchesJinja2) {
  RunFamily(Renderer::kCli, "qwen2", 0, 24);
}

TEST_F(ChatTemplateOracleTest, MistralFamilyCliMatchesJinja2) {
  RunFamily(Renderer::kCli, "mistral", 0, 24);
}

// Llama 3.1, Qwen2.5 and Mistral v0.1: tools branches skipped (tools is None), `in` on dicts, message
// attributes that are not there, and Mistral v0.1's refusals.
TEST_F(ChatTemplateOracleTest, LaterFamilyTemplatesMatchJinja2) {
  for (const char* family : {"llama3", "qwen2", "mistral"}) RunFamily(Renderer::kLibrary, family, 1, 24);
}

TEST_F(ChatTemplateOracleTest, OtherBuiltinsMatchJinja2) {
  RunFamily(Renderer::kLibrary, "llama2", 0, 8);
  RunFamily(Renderer::kLibrary, "phi3", 0, 8);
}

// Mistral v0.1 raises on a system message, Llama 2 on roles that do not alternate: both refuse, and
// tandem's message is the template's.
TEST_F(ChatTemplateOracleTest, RefusalsMatchJinja2) {
  for (const Family& family : Families()) {
    if (family.name != "mistral" && family.name != "llama2") continue;
    const fs::path model_dir = dir_ / family.name;
    WriteModel(model_dir, family, TemplateSource(family.name));  // the built-in: Mistral v0.1, Llama 2
    const json not_alternating = json::array({Message("user", "a"), Message("user", "b")});
    EXPECT_TRUE(ExpectSameRendering(Renderer::kCli, model_dir, not_alternating, true, family.name));
    if (family.name == "mistral") {
      const json with_system = json::array({Message("system", "s"), Message("user", "u")});
      EXPECT_TRUE(ExpectSameRendering(Renderer::kCli, model_dir, with_system, true, family.name));
      const json late_system = json::array({Message("user", "u"), Message("system", "s")});
      EXPECT_TRUE(ExpectSameRendering(Renderer::kCli, model_dir, late_system, true, family.name));
      testing::WriteBytes(dir_ / "messages.json", late_system.dump());
      const testing::CommandResult ours = RunProgram(
          "tandem",
          {"chat-template", "--model", model_dir.string(), "--messages", (dir_ / "messages.json").string()});
      EXPECT_NE(ours.err.find("Only user and assistant roles are supported!"), std::string::npos) << ours.err;
    }
  }
}

// Each snippet of snippets.txt (separated by lines of =====) as a directory's chat_template.jinja: the
// semantics the interpreter implements (and refuses) against jinja2's.
TEST_F(ChatTemplateOracleTest, JinjaSemanticsMatchJinja2) {
  const std::string snippets = ReadText(templates_ / "snippets.txt");
  const std::string separator = "\n=====\n";
  const json messages = json::array({Message("system", "Sys  prompt\n"),
                                     Message("user", " Hi \"there\" 'x' \u00e9 \u4e2d\u6587 \U0001F600\n\n"),
                                     Message("assistant", "Hello!"), Message("user", "Bye")});
  const fs::path model_dir = dir_ / "snippets";
  WriteModel(model_dir, Families()[0], "unused: chat_template.jinja comes first");
  size_t start = 0;
  int count = 0;
  while (start < snippets.size()) {
    size_t end = snippets.find(separator, start);
    if (end == std::string::npos) end = snippets.size();
    const std::string snippet = snippets.substr(start, end - start);
    testing::WriteBytes(model_dir / "chat_template.jinja", snippet);
    ExpectSameRendering(Renderer::kLibrary, model_dir, messages, true,
                        "snippet " + std::to_string(count) + ":\n" + snippet);
    ++count;
    start = end + separator.size();
  }
  EXPECT_GE(count, 80);
}

}  // namespace
}  // namespace tandem
