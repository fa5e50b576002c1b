// tandem-scheduler over HTTPS (--tls-cert, client certificates required, a control secret), as real
// processes on loopback: a tail given the scheduler's CA (--scheduler-ca) and a client certificate
// registers through its heartbeats, one given another CA never does and logs why, nor does one without a
// client certificate; an edge with --split auto gets its plans over HTTPS; a CA file that cannot be used,
// or TLS flags for a plain-HTTP scheduler, stop a tail or an edge at start-up (exit 2, naming the file).
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <fstream>
#include <memory>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "http_client.hpp"
#include "scheduler_process.hpp"
#include "tandem/services/http_client.hpp"
#include "test_env.hpp"

namespace tandem {
namespace {

using nlohmann::json;
using std::chrono::milliseconds;
using testing::BackgroundProcess;
using testing::WaitUntil;

// `args` and more flags.
std::vector<std::string> With(std::vector<std::string> args, const std::vector<std::string>& more) {
  args.insert(args.end(), more.begin(), more.end());
  return args;
}

class SchedulerHttpsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (testing::SharedDir().empty()) GTEST_SKIP() << "shared folder not found";
    for (const std::string name : {"scheduler", "other"}) {
      const testing::CommandResult made =
          testing::RunProgram("tandem", {"tls-selfsigned", "--out", (dir_ / name).string()});
      ASSERT_EQ(made.exit_code, 0) << made.err;
    }
    const testing::CommandResult secret = testing::RunProgram("tandem", {"control-secret", "--out", secret_});
    ASSERT_EQ(secret.exit_code, 0) << secret.err;
  }

  std::string Ca(const std::string& name) const { return (dir_ / (name + "-ca.pem")).string(); }

  // The client certificate signed by the scheduler's CA, as tails and edges give it.
  std::vector<std::string> ClientCertFlags() const {
    return {"--scheduler-client-cert", (dir_ / "scheduler-client-cert.pem").string(),
            "--scheduler-client-key", (dir_ / "scheduler-client-key.pem").string()};
  }

  // The scheduler with TLS, client certificates from its CA required, and the control secret; its
  // https:// address ("" when it did not start).
  std::string StartScheduler() {
    scheduler_ = std::make_unique<testing::SchedulerProcess>(
        std::vector<std::string>{"--tls-cert", (dir_ / "scheduler-cert.pem").string(), "--tls-key",
                                 (dir_ / "scheduler-key.pem").string(), "--tls-client-ca", Ca("scheduler"),
                                 "--control-secret-file", secret_});
    return scheduler_->started() ? "https://" + scheduler_->address() : "";
  }

  std::unique_ptr<BackgroundProcess> StartTail(const std::string& scheduler, const std::string& ca,
                                               bool client_cert = true) {
    std::vector<std::string> args = {"--model",
                                     testing::Stories260KModel().string(),
                                     "--insecure",
                                     "--bind",
                                     "tcp://127.0.0.1:0",
                                     "--http",
                                     "",
                                     "--workers",
                                     "1",
                                     "--heartbeat-ms",
                                     "200",
                                     "--scheduler",
                                     scheduler,
                                     "--scheduler-ca",
                                     ca,
                                     "--control-secret-file",
                                     secret_};
    if (client_cert) args = With(args, ClientCertFlags());
    return std::make_unique<BackgroundProcess>("tandem-cloud", args);
  }

  // GET `target` of the scheduler over HTTPS, trusting its CA.
  services::HttpReply Get(const std::string& scheduler, const std::string& target) {
    services::HttpClientRequest request{.target = target};
    auto tls = services::MakeHttpClientTls({.ca_file = Ca("scheduler"),
                                            .client_cert_file = ClientCertFlags()[1],
                                            .client_key_file = ClientCertFlags()[3]});
    EXPECT_TRUE(tls.ok()) << tls.status().ToString();
    if (tls.ok()) request.tls = *tls;
    services::HttpReply reply;
    const Status status = services::HttpExchange(scheduler, request, reply);
    EXPECT_TRUE(status.ok()) << status.ToString();
    return reply;
  }

  std::vector<std::string> RegisteredEndpoints(const std::string& scheduler) {
    const services::HttpReply reply = Get(scheduler, "/v1/tails");
    std::vector<std::string> endpoints;
    if (reply.status != 200) return endpoints;
    const json tails = json::parse(reply.body)["tails"];
    for (const json& tail : tails) endpoints.push_back(tail["endpoint"]);
    return endpoints;
  }

  testing::TempDir dir_;
  std::string secret_ = (dir_ / "control.secret").string();
  std::unique_ptr<testing::SchedulerProcess> scheduler_;
};

TEST_F(SchedulerHttpsTest, TailsWithTheCaRegisterAndEdgesGetPlans) {
  const std::string scheduler = StartScheduler();
  ASSERT_FALSE(scheduler.empty()) << scheduler_->log();
  // Plain HTTP to the scheduler's port gets no answer.
  EXPECT_EQ(testing::HttpCall(scheduler_->address(), "GET", "/v1/tails", "", {}, milliseconds(5000)).status,
            0);

  const auto trusted = StartTail(scheduler, Ca("scheduler"));
  const auto deceived = StartTail(scheduler, Ca("other"));
  const auto anonymous = StartTail(scheduler, Ca("scheduler"), /*client_cert=*/false);
  const std::string endpoint = testing::LogField(trusted->WaitForLine("msg=serving"), "endpoint");
  ASSERT_FALSE(endpoint.empty()) << trusted->Stderr();
  ASSERT_TRUE(WaitUntil([&] { return !RegisteredEndpoints(scheduler).empty(); }, milliseconds(20000)))
      << trusted->Stderr();
  EXPECT_FALSE(trusted->WaitForLine("msg=\"registered with the scheduler\"").empty()) << trusted->Stderr();
  const std::string failure = deceived->WaitForLine("certificate verify failed");
  EXPECT_NE(failure.find("TLS handshake"), std::string::npos) << deceived->Stderr();
  EXPECT_FALSE(anonymous->WaitForLine("msg=\"heartbeat failed; retrying every interval\"").empty())
      << anonymous->Stderr();
  EXPECT_EQ(RegisteredEndpoints(scheduler), std::vector<std::string>{endpoint});

  const json golden = testing::GoldenRecords().front();
  BackgroundProcess edge(
      "tandem-edge",
      With({"--model", testing::Stories260KModel().string(), "--tokenizer",
            testing::Stories260KTokenizer().string(), "--cloud", endpoint, "--insecure", "--listen",
            "127.0.0.1:0", "--split", "auto", "--allow-local=false", "--scheduler", scheduler},
           With({"--scheduler-ca", Ca("scheduler"), "--scheduler-timeout-ms=2000", "--control-secret-file",
                 secret_},
                ClientCertFlags())));
  const std::string address = testing::LogField(edge.WaitForLine("msg=serving"), "listen");
  ASSERT_FALSE(address.empty()) << edge.Stderr();
  ASSERT_TRUE(WaitUntil([&] { return testing::HttpCall(address, "GET", "/readyz").status == 200; },
                        milliseconds(20000)));
  const json request = {{"prompt", golden["prompt"]},
                        {"max_tokens", golden["ids"].size() - golden["prompt_ids"].size()},
                        {"temperature", 0}};
  const testing::HttpResult completion =
      testing::HttpCall(address, "POST", "/v1/completions", request.dump());
  ASSERT_EQ(completion.status, 200) << completion.body << edge.Stderr();
  EXPECT_EQ(golden["prompt"].get<std::string>() +
                json::parse(completion.body)["choices"][0]["text"].get<std::string>(),
            golden["text"]);
  const json plan = json::parse(testing::HttpCall(address, "GET", "/v1/plan").body);
  EXPECT_GE(plan["planner"]["scheduler"]["plans"].get<int>(), 1) << plan.dump();
  EXPECT_EQ(plan["planner"]["scheduler"]["error"], "") << plan.dump();
  EXPECT_EQ(scheduler_->process().Stop(), 0) << scheduler_->log();
}

// A CA file that is missing or holds no certificate, and TLS flags for a plain-HTTP scheduler, stop a tail
// and an edge at start-up with exit 2, naming the file or the flag.
TEST_F(SchedulerHttpsTest, AnUnusableCaIsAStartUpError) {
  const std::string garbage = (dir_ / "garbage.pem").string();
  std::ofstream(garbage) << "not a certificate\n";
  const std::string missing = (dir_ / "missing.pem").string();
  for (const auto& [program, args] : std::vector<std::pair<std::string, std::vector<std::string>>>{
           {"tandem-cloud", {"--model", testing::Stories260KModel().string(), "--insecure"}},
           {"tandem-edge",
            {"--model", testing::Stories260KModel().string(), "--tokenizer",
             testing::Stories260KTokenizer().string(), "--cloud", "tcp://127.0.0.1:1", "--insecure"}}}) {
    for (const auto& [scheduler, ca, named] : std::vector<std::tuple<std::string, std::string, std::string>>{
             {"https://127.0.0.1:1", missing, missing},
             {"https://127.0.0.1:1", garbage, garbage},
             {"127.0.0.1:1", Ca("scheduler"), "--scheduler-ca"}}) {
      SCOPED_TRACE(program + " " + scheduler + " " + ca);
      const testing::CommandResult result =
          testing::RunProgram(program, With(args, {"--scheduler", scheduler, "--scheduler-ca", ca}), 60);
      EXPECT_EQ(result.exit_code, 2) << result.err;
      EXPECT_NE(result.err.find(named), std::string::npos) << result.err;
    }
  }
}

}  // namespace
}  // namespace tandem
