// The official OpenAI Node SDK (openai@4, installed by the openai_sdk_install fixture into build/node-sdk)
// runs chat.completions.create against a real tandem-edge over a real split, plain and streamed with
// stream_options.include_usage, and reads back what a client would: the same text both ways, the
// assistant role, a finish reason and the usage; the same over HTTPS (NODE_EXTRA_CA_CERTS for the
// development CA). A wrong key is the SDK's AuthenticationError.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <fstream>

#include "cloud_tail_process.hpp"
#include "test_env.hpp"

namespace tandem {
namespace {

using nlohmann::json;
using testing::CloudTailProcess;
using testing::EdgeProcess;

constexpr char kApiKey[] = "sdk-test-key";
constexpr int kMaxTokens = 24;

class OpenAiSdkTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (testing::SharedDir().empty()) GTEST_SKIP() << "shared folder not found";
    sdk_dir_ = testing::BinDir().parent_path() / "node-sdk";
    ASSERT_TRUE(std::filesystem::exists(sdk_dir_ / "node_modules" / "openai"))
        << "the OpenAI SDK is not installed in " << sdk_dir_
        << " (ctest's openai_sdk_install fixture does it)";
    messages_ = dir_ / "messages.json";
    std::ofstream(messages_) << json::array({{{"role", "system"}, {"content", "You tell short stories."}},
                                             {{"role", "user"}, {"content", "Once upon a time"}}})
                                    .dump();
  }

  // The SDK script against `edge` with `key`; over HTTPS trusting `ca` when given.
  testing::CommandResult RunSdk(const EdgeProcess& edge, const std::string& key,
                                const std::string& ca = "") const {
    std::vector<std::string> args;
    if (!ca.empty()) args.push_back("NODE_EXTRA_CA_CERTS=" + ca);
    const std::string scheme = ca.empty() ? "http://" : "https://";
    args.insert(args.end(), {"node", (sdk_dir_ / "openai_chat.mjs").string(), scheme + edge.address() + "/v1",
                             key, messages_.string(), std::to_string(kMaxTokens)});
    return testing::RunProgram("/usr/bin/env", args, 120);
  }

  testing::TempDir dir_;
  std::filesystem::path sdk_dir_;
  std::filesystem::path messages_;
};

TEST_F(OpenAiSdkTest, ChatCompletionsCreatePlainAndStreamedOverASplit) {
  CloudTailProcess tail;
  ASSERT_TRUE(tail.started()) << tail.log();
  EdgeProcess edge(tail, {"--split", "2", "--api-key", kApiKey, "--chat-template", "chatml"});
  ASSERT_TRUE(edge.started()) << edge.log();
  ASSERT_TRUE(testing::AwaitReady(edge)) << edge.log();

  const testing::CommandResult result = RunSdk(edge, kApiKey);
  ASSERT_EQ(result.exit_code, 0) << result.err << edge.log();
  const json out = json::parse(result.out);
  const json& plain = out["plain"];
  const json& streamed = out["streamed"];
  EXPECT_EQ(plain["object"], "chat.completion");
  EXPECT_EQ(plain["role"], "assistant");
  EXPECT_FALSE(plain["content"].get<std::string>().empty());
  EXPECT_TRUE(plain["finish_reason"] == "length" || plain["finish_reason"] == "stop") << plain;
  EXPECT_GT(plain["usage"]["prompt_tokens"].get<int>(), 0);
  EXPECT_LE(plain["usage"]["completion_tokens"].get<int>(), kMaxTokens);
  EXPECT_EQ(plain["usage"]["total_tokens"].get<int>(),
            plain["usage"]["prompt_tokens"].get<int>() + plain["usage"]["completion_tokens"].get<int>());

  EXPECT_EQ(streamed["objects"], json::array({"chat.completion.chunk"}));
  EXPECT_EQ(streamed["role"], "assistant");
  EXPECT_EQ(streamed["content"], plain["content"]) << "greedy: streamed and plain must agree";
  EXPECT_EQ(streamed["finish_reason"], plain["finish_reason"]);
  EXPECT_EQ(streamed["usage"], plain["usage"]) << "stream_options.include_usage: the last chunk's usage";
  EXPECT_GT(streamed["chunks"].get<int>(), 2);
}

TEST_F(OpenAiSdkTest, ChatCompletionsCreateOverHttps) {
  const std::string prefix = (dir_ / "dev").string();
  const testing::CommandResult made = testing::RunProgram("tandem", {"tls-selfsigned", "--out", prefix});
  ASSERT_EQ(made.exit_code, 0) << made.err;
  EdgeProcess edge({"--api-key", kApiKey, "--chat-template", "chatml", "--tls-cert", prefix + "-cert.pem",
                    "--tls-key", prefix + "-key.pem"});
  ASSERT_TRUE(edge.started()) << edge.log();
  const testing::CommandResult result = RunSdk(edge, kApiKey, prefix + "-ca.pem");
  ASSERT_EQ(result.exit_code, 0) << result.err << edge.log();
  const json out = json::parse(result.out);
  EXPECT_EQ(out["plain"]["object"], "chat.completion");
  EXPECT_FALSE(out["plain"]["content"].get<std::string>().empty());
  EXPECT_EQ(out["streamed"]["content"], out["plain"]["content"]);
  EXPECT_GT(out["streamed"]["chunks"].get<int>(), 2);

  // Without the CA the SDK refuses the server's certificate.
  const testing::CommandResult untrusted = RunSdk(edge, kApiKey, "/dev/null");
  EXPECT_NE(untrusted.exit_code, 0) << untrusted.out;
}

TEST_F(OpenAiSdkTest, AWrongKeyIsTheSdksAuthenticationError) {
  EdgeProcess edge({"--api-key", kApiKey, "--chat-template", "chatml"});
  ASSERT_TRUE(edge.started()) << edge.log();
  const testing::CommandResult result = RunSdk(edge, "not-the-key");
  EXPECT_EQ(result.exit_code, 1) << result.out;
  EXPECT_NE(result.err.find("AuthenticationError: 401"), std::string::npos) << result.err;
}

}  // namespace
}  // namespace tandem
