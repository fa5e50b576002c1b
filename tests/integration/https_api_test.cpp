// HTTPS on tandem-edge, as real processes on loopback: certificates from `tandem tls-selfsigned`, curl as
// the client. A golden completion over HTTPS, plain HTTP, TLS 1.1 and a CBC cipher suite refused (and the
// server going on), client certificates required with --tls-client-ca (none and another CA's refused), bad
// TLS files a start-up error naming the file.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <string>
#include <vector>

#include "cloud_tail_process.hpp"
#include "test_env.hpp"

namespace tandem {
namespace {

using nlohmann::json;
using testing::CommandResult;
using testing::EdgeProcess;

// One `tandem tls-selfsigned --out DIR/NAME` set of files.
struct CertSet {
  std::string ca, cert, key, client_cert, client_key;
};

CertSet MakeCerts(const testing::TempDir& dir, const std::string& name) {
  const std::string prefix = (dir / name).string();
  const CommandResult made = testing::RunProgram("tandem", {"tls-selfsigned", "--out", prefix});
  EXPECT_EQ(made.exit_code, 0) << made.err;
  return {prefix + "-ca.pem", prefix + "-cert.pem", prefix + "-key.pem", prefix + "-client-cert.pem",
          prefix + "-client-key.pem"};
}

struct CurlReply {
  int exit_code = -1;
  int status = 0;  // 0: no HTTP answer
  std::string body;
  std::string err;
};

// curl `url` (a POST of `body` when not empty) with `options` (--cacert, --cert, ...).
CurlReply Curl(const std::string& url, const std::vector<std::string>& options,
               const std::string& body = "") {
  std::vector<std::string> args = {"-sS", "--max-time", "60", "-w", "\n%{http_code}"};
  args.insert(args.end(), options.begin(), options.end());
  if (!body.empty()) args.insert(args.end(), {"-H", "Content-Type: application/json", "--data-binary", body});
  args.push_back(url);
  const CommandResult run = testing::RunProgram("/usr/bin/curl", args, 90);
  CurlReply reply{run.exit_code, 0, run.out, run.err};
  const size_t last_line = reply.body.rfind('\n');
  if (last_line != std::string::npos) {
    reply.status = std::atoi(reply.body.c_str() + last_line + 1);
    reply.body.resize(last_line);
  }
  return reply;
}

// Waits for /readyz over HTTPS.
bool AwaitReadyOverHttps(const EdgeProcess& edge, const std::vector<std::string>& options) {
  return testing::WaitUntil(
      [&] { return Curl("https://" + edge.address() + "/readyz", options).status == 200; },
      std::chrono::seconds(20));
}

class HttpsApiTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (testing::SharedDir().empty()) GTEST_SKIP() << "shared folder not found";
    certs_ = MakeCerts(dir_, "dev");
  }

  testing::TempDir dir_;
  CertSet certs_;
};

TEST_F(HttpsApiTest, SelfsignedWritesFiveFilesWithPrivateKeys) {
  for (const std::string& path :
       {certs_.ca, certs_.cert, certs_.key, certs_.client_cert, certs_.client_key}) {
    EXPECT_TRUE(std::filesystem::exists(path)) << path;
  }
  for (const std::string& key : {certs_.key, certs_.client_key}) {
    struct stat info {};
    ASSERT_EQ(stat(key.c_str(), &info), 0) << key;
    EXPECT_EQ(info.st_mode & 0777, 0600u) << key;
  }
  const CommandResult help = testing::RunProgram("tandem", {"tls-selfsigned", "--help"});
  EXPECT_NE(help.out.find("DEVELOPMENT"), std::string::npos) << help.out;
}

TEST_F(HttpsApiTest, AGoldenCompletionOverHttpsAndPlainHttpIsRefused) {
  EdgeProcess edge({"--tls-cert", certs_.cert, "--tls-key", certs_.key});
  ASSERT_TRUE(edge.started()) << edge.log();
  EXPECT_NE(edge.log().find("tls=on"), std::string::npos) << edge.log();
  const std::vector<std::string> trust = {"--cacert", certs_.ca};
  ASSERT_TRUE(AwaitReadyOverHttps(edge, trust)) << edge.log();

  const json golden = testing::GoldenRecords().at(0);
  const auto tokens = golden["ids"].size() - golden["prompt_ids"].size();
  const json request = {{"prompt", golden["prompt"]}, {"max_tokens", tokens}, {"temperature", 0}};
  const std::string url = "https://" + edge.address() + "/v1/completions";
  const CurlReply reply = Curl(url, trust, request.dump());
  ASSERT_EQ(reply.status, 200) << reply.err << reply.body << edge.log();
  const std::string text = golden["text"], prompt = golden["prompt"];
  EXPECT_EQ(json::parse(reply.body)["choices"][0]["text"], text.substr(prompt.size()));

  // Without the CA curl does not trust the server.
  EXPECT_EQ(Curl(url, {}, request.dump()).status, 0);

  const CurlReply plain = Curl("http://" + edge.address() + "/v1/completions", {}, request.dump());
  EXPECT_NE(plain.exit_code, 0);
  EXPECT_EQ(plain.status, 0) << plain.body;
  EXPECT_EQ(Curl("https://" + edge.address() + "/healthz", trust).status, 200) << edge.log();
  EXPECT_NE(edge.log().find("TLS handshake failed"), std::string::npos) << edge.log();
  const CurlReply metrics = Curl("https://" + edge.address() + "/metrics", trust);
  EXPECT_NE(metrics.body.find("tandem_http_tls_handshake_failures_total 2"), std::string::npos)
      << metrics.body;

  // TLS 1.2 with an AEAD cipher is served; a CBC-SHA1 suite (which OpenSSL's defaults still accept) and
  // TLS 1.1 (offered at the client's lowest security level) are not.
  const std::string health = "https://" + edge.address() + "/healthz";
  EXPECT_EQ(Curl(health, {"--cacert", certs_.ca, "--tlsv1.2", "--tls-max", "1.2"}).status, 200);
  const CurlReply cbc = Curl(health, {"--cacert", certs_.ca, "--tlsv1.2", "--tls-max", "1.2", "--ciphers",
                                      "ECDHE-ECDSA-AES128-SHA"});
  EXPECT_EQ(cbc.status, 0) << cbc.err;
  const CurlReply old_protocol = Curl(
      health, {"--cacert", certs_.ca, "--tlsv1.1", "--tls-max", "1.1", "--ciphers", "DEFAULT@SECLEVEL=0"});
  EXPECT_EQ(old_protocol.status, 0) << old_protocol.err;
}

TEST_F(HttpsApiTest, ClientCertificatesAreRequiredAndVerified) {
  const CertSet other = MakeCerts(dir_, "other");
  EdgeProcess edge({"--tls-cert", certs_.cert, "--tls-key", certs_.key, "--tls-client-ca", certs_.ca});
  ASSERT_TRUE(edge.started()) << edge.log();
  EXPECT_NE(edge.log().find("client_certs=required"), std::string::npos) << edge.log();
  const std::vector<std::string> right = {"--cacert",         certs_.ca, "--cert",
                                          certs_.client_cert, "--key",   certs_.client_key};
  ASSERT_TRUE(AwaitReadyOverHttps(edge, right)) << edge.log();
  const std::string url = "https://" + edge.address() + "/v1/models";

  const CurlReply none = Curl(url, {"--cacert", certs_.ca});
  EXPECT_EQ(none.status, 0) << none.body;
  const CurlReply foreign =
      Curl(url, {"--cacert", certs_.ca, "--cert", other.client_cert, "--key", other.client_key});
  EXPECT_EQ(foreign.status, 0) << foreign.body;
  // The server's own certificate is not for clients (extendedKeyUsage serverAuth only).
  const CurlReply server_cert =
      Curl(url, {"--cacert", certs_.ca, "--cert", certs_.cert, "--key", certs_.key});
  EXPECT_EQ(server_cert.status, 0) << server_cert.body;

  const CurlReply accepted = Curl(url, right);
  EXPECT_EQ(accepted.status, 200) << accepted.err << edge.log();
  EXPECT_EQ(json::parse(accepted.body)["data"][0]["id"], "stories260K");
}

TEST_F(HttpsApiTest, BadTlsFilesAreAStartUpErrorNamingTheFile) {
  const CertSet other = MakeCerts(dir_, "other");
  const std::string missing = (dir_ / "missing.pem").string();
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases = {
      {{"--tls-cert", missing, "--tls-key", certs_.key}, missing},
      {{"--tls-cert", certs_.cert, "--tls-key", missing}, missing},
      {{"--tls-cert", certs_.key, "--tls-key", certs_.key}, certs_.key},
      {{"--tls-cert", certs_.cert, "--tls-key", other.key}, other.key},
      {{"--tls-cert", certs_.cert, "--tls-key", certs_.key, "--tls-client-ca", certs_.key}, certs_.key},
      {{"--tls-cert", certs_.cert}, "--tls-key"},
  };
  for (const auto& [flags, named] : cases) {
    std::vector<std::string> args = {"--model",     testing::Stories260KModel().string(),
                                     "--tokenizer", testing::Stories260KTokenizer().string(),
                                     "--listen",    "127.0.0.1:0"};
    args.insert(args.end(), flags.begin(), flags.end());
    const CommandResult run = testing::RunProgram("tandem-edge", args, 60);
    EXPECT_EQ(run.exit_code, 2) << run.err;
    EXPECT_NE(run.err.find(named), std::string::npos) << run.err;
  }
}

}  // namespace
}  // namespace tandem
