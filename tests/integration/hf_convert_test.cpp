// `tandem convert` turns stories260K into a Hugging Face directory (safetensors, config.json,
// tokenizer.json), and that directory, loaded through the Hugging Face path with its own tokenizer,
// reproduces the five golden continuations exactly: monolithic, split in one process, and split across
// processes with a real tandem-cloud on the converted model.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <fstream>

#include "cloud_tail_process.hpp"
#include "http_client.hpp"
#include "tandem/text/tokenizer.hpp"
#include "test_env.hpp"

namespace tandem {
namespace {

using nlohmann::json;
using testing::RunProgram;

json ReadJson(const std::filesystem::path& path) {
  std::ifstream in(path);
  return json::parse(in, nullptr, /*allow_exceptions=*/false);
}

class HfConvertTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (testing::SharedDir().empty()) return;
    dir_ = new testing::TempDir();
    model_ = (dir_->path() / "stories260K-hf").string();
    convert_ =
        RunProgram("tandem", {"convert", "--model", testing::Stories260KModel().string(), "--tokenizer",
                              testing::Stories260KTokenizer().string(), "--out", model_});
  }
  static void TearDownTestSuite() {
    delete dir_;
    dir_ = nullptr;
  }
  void SetUp() override {
    if (dir_ == nullptr) GTEST_SKIP() << "shared folder not found";
    ASSERT_EQ(convert_.exit_code, 0) << convert_.out << convert_.err;
  }

  // `tandem generate --json` greedy on the converted model (no --tokenizer: the directory's), then `extra`.
  static testing::CommandResult Generate(const json& golden, const std::vector<std::string>& extra) {
    std::vector<std::string> args = {"generate",
                                     "--model",
                                     model_,
                                     "--prompt",
                                     golden["prompt"],
                                     "--steps",
                                     std::to_string(golden["steps"].get<int>()),
                                     "--temperature",
                                     "0",
                                     "--json"};
    args.insert(args.end(), extra.begin(), extra.end());
    return RunProgram("tandem", args, 60);
  }

  static void ExpectGolden(const testing::CommandResult& result, const json& golden) {
    ASSERT_EQ(result.exit_code, 0) << result.err;
    const json out = json::parse(result.out);
    EXPECT_EQ(out["prompt_ids"], golden["prompt_ids"]);
    EXPECT_EQ(out["ids"], golden["ids"]);
    EXPECT_EQ(out["text"], golden["text"]);
  }

  static testing::TempDir* dir_;
  static std::string model_;
  static testing::CommandResult convert_;
};

testing::TempDir* HfConvertTest::dir_ = nullptr;
std::string HfConvertTest::model_;
testing::CommandResult HfConvertTest::convert_;

TEST_F(HfConvertTest, WritesAHuggingFaceLlamaDirectory) {
  const std::filesystem::path dir(model_);
  for (const char* file : {"model.safetensors", "config.json", "tokenizer.json", "tokenizer_config.json",
                           "generation_config.json"}) {
    EXPECT_TRUE(std::filesystem::exists(dir / file)) << file;
  }
  const json config = ReadJson(dir / "config.json");
  EXPECT_EQ(config["architectures"], json({"LlamaForCausalLM"}));
  EXPECT_EQ(config["hidden_size"], 64);
  EXPECT_EQ(config["num_hidden_layers"], 5);
  EXPECT_EQ(config["num_key_value_heads"], 4);
  EXPECT_EQ(config["tie_word_embeddings"], true);
  const json tokenizer = ReadJson(dir / "tokenizer.json");
  EXPECT_EQ(tokenizer["model"]["type"], "BPE");
  EXPECT_EQ(tokenizer["model"]["byte_fallback"], true);
  EXPECT_EQ(tokenizer["model"]["vocab"].size(), 512u);
}

TEST_F(HfConvertTest, ReproducesTheGoldenOutputsWholeAndSplit) {
  for (const json& golden : testing::GoldenRecords()) {
    SCOPED_TRACE(golden["prompt"].get<std::string>());
    ExpectGolden(Generate(golden, {}), golden);
    ExpectGolden(Generate(golden, {"--split", "2"}), golden);
  }
}

TEST_F(HfConvertTest, ReproducesTheGoldenOutputsAcrossProcesses) {
  // The tail serves the converted directory too; the fingerprints of the two sides must agree.
  testing::CloudTailProcess tail({"--model", model_});
  ASSERT_TRUE(tail.started()) << tail.log();
  for (const json& golden : testing::GoldenRecords()) {
    SCOPED_TRACE(golden["prompt"].get<std::string>());
    std::vector<std::string> extra = tail.EdgeFlags();
    extra.insert(extra.end(), {"--split", "3"});
    ExpectGolden(Generate(golden, extra), golden);
  }
  // The original llama2.c file is other weights (the q/k rows are permuted): its edge is refused.
  std::vector<std::string> args = testing::GenerateArgs("Once upon a time", 8);
  const std::vector<std::string> cloud = tail.EdgeFlags();
  args.insert(args.end(), cloud.begin(), cloud.end());
  args.insert(args.end(), {"--split", "3"});
  const testing::CommandResult refused = RunProgram("tandem", args, 60);
  EXPECT_NE(refused.exit_code, 0);
  EXPECT_NE(refused.err.find("fingerprint"), std::string::npos) << refused.err;
}

// tandem-edge and tandem-cloud on the directory, the edge with the directory's own tokenizer: the REST
// API names the model after the directory and completes greedily as the golden run does.
TEST_F(HfConvertTest, TheEdgeServesTheDirectoryThroughTheRestApi) {
  testing::CloudTailProcess tail({"--model", model_});
  ASSERT_TRUE(tail.started()) << tail.log();
  testing::EdgeProcess edge(tail, {"--model", model_, "--tokenizer", "", "--split", "3"});
  ASSERT_TRUE(edge.started()) << edge.log();
  // A fixed split serves once its tail has answered the handshake, as an orchestrator would wait for.
  ASSERT_TRUE(testing::AwaitReady(edge, std::chrono::seconds(30))) << edge.log();
  const testing::HttpResult models = testing::HttpCall(edge.address(), "GET", "/v1/models");
  ASSERT_EQ(models.status, 200) << models.body;
  EXPECT_EQ(json::parse(models.body)["data"][0]["id"], "stories260K-hf");

  const json golden = testing::GoldenRecords().at(0);
  const std::string prompt = golden["prompt"];
  const json request = {{"prompt", prompt}, {"max_tokens", 40}, {"temperature", 0}};
  const testing::HttpResult completion =
      testing::HttpCall(edge.address(), "POST", "/v1/completions", request.dump());
  ASSERT_EQ(completion.status, 200) << completion.body << edge.log();
  const std::string text = json::parse(completion.body)["choices"][0]["text"];
  ASSERT_FALSE(text.empty());
  EXPECT_EQ(text, golden["text"].get<std::string>().substr(prompt.size(), text.size()));
}

// The exported tokenizer.json, run by the Hugging Face BPE code, tokenizes as llama2.c does: every golden
// text cut at every word, and text with bytes outside the vocabulary and invalid UTF-8.
TEST_F(HfConvertTest, TheExportedTokenizerEncodesAsLlama2cDoes) {
  auto original = Tokenizer::Load(testing::Stories260KTokenizer().string(), 512);
  auto exported = Tokenizer::LoadForModel(model_, "", 512);
  ASSERT_TRUE(original.ok() && exported.ok()) << exported.status().ToString();
  EXPECT_EQ(exported->kind(), TokenizerKind::kHfBpe);
  std::vector<std::string> texts = {"",
                                    " ",
                                    "  two  spaces ",
                                    "Tom's café, naïve — 😀!",
                                    "\x01\x7f\n\t",
                                    std::string("bad \xC3\x28 utf8 \xFF")};
  for (const json& golden : testing::GoldenRecords()) {
    const std::string text = golden["text"];
    for (size_t end = text.find(' '); end != std::string::npos; end = text.find(' ', end + 1)) {
      texts.push_back(text.substr(0, end));
    }
    texts.push_back(text);
  }
  for (const std::string& text : texts) {
    const std::vector<int> ids = original->Encode(text, /*add_bos=*/true, /*add_eos=*/false);
    ASSERT_EQ(exported->Encode(text, true, false), ids) << "'" << text << "'";
  }
  EXPECT_GT(texts.size(), 500u);
}

TEST_F(HfConvertTest, RefusesToConvertWhatIsNotALlama2cModel) {
  const testing::CommandResult again = RunProgram(
      "tandem", {"convert", "--model", model_, "--tokenizer", testing::Stories260KTokenizer().string(),
                 "--out", (dir_->path() / "again").string()});
  EXPECT_EQ(again.exit_code, 2);
  EXPECT_NE(again.err.find("already a Hugging Face model"), std::string::npos) << again.err;
  const testing::CommandResult missing = RunProgram(
      "tandem",
      {"convert", "--model", testing::Stories260KModel().string(), "--out", (dir_->path() / "x").string()});
  EXPECT_EQ(missing.exit_code, 2);
  EXPECT_NE(missing.err.find("--tokenizer"), std::string::npos) << missing.err;
}

}  // namespace
}  // namespace tandem
