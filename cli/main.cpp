// tandem: run, split, benchmark and evaluate models from the command line.
#include <cstdio>
#include <string>
#include <vector>

#include "commands.hpp"

namespace {

constexpr const char* kUsage = R"(usage: tandem <command> [flags]

Commands:
  generate        generate text from a prompt, optionally split at block K (--split K)
  make-model      write a llama2.c model with random weights (tiny, stories15M, stories110M shapes)
  bench           prefill and decode speed and peak memory, medians over repeats
  bench-suite     every throughput figure (monolithic, split per codec, tail at 1-64 sessions, codecs)
  eval-agreement  teacher-forced top-1 agreement of int8 blocks with float32 on a golden file
  privacy-eval    token-recovery rate of inversion attacks by the tail, per cut and codec
  keygen          write a CURVE key pair (PREFIX.key, PREFIX.pub) for the encrypted edge-cloud link
  control-secret  write a control-plane secret (mode 0600) for --control-secret-file of every service
  bench-split     the edge's adaptive split against every static split, on an emulated link schedule
  loadgen         concurrent clients against tandem-edge: latency, TTFT, errors, RSS growth (load and soak)
  convert         a llama2.c checkpoint and tokenizer to a Hugging Face model directory (safetensors)
  chat-template   the prompt a model's chat template renders for a JSON file of messages
  tls-selfsigned  a development CA, server and client certificates for HTTPS (not for production)

Run `tandem <command> --help` for the flags of a command.
)";

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fputs(kUsage, stderr);
    return 2;
  }
  const std::string command = argv[1];
  const std::vector<std::string> args(argv + 2, argv + argc);
  if (command == "generate") return tandem::cli::RunGenerate(args);
  if (command == "make-model") return tandem::cli::RunMakeModel(args);
  if (command == "bench") return tandem::cli::RunBench(args);
  if (command == "bench-suite") return tandem::cli::RunBenchSuite(args);
  if (command == "eval-agreement") return tandem::cli::RunEvalAgreement(args);
  if (command == "privacy-eval") return tandem::cli::RunPrivacyEval(args);
  if (command == "keygen") return tandem::cli::RunKeygen(args);
  if (command == "control-secret") return tandem::cli::RunControlSecret(args);
  if (command == "bench-split") return tandem::cli::RunBenchSplit(args);
  if (command == "loadgen") return tandem::cli::RunLoadgen(args);
  if (command == "convert") return tandem::cli::RunConvert(args);
  if (command == "chat-template") return tandem::cli::RunChatTemplate(args);
  if (command == "tls-selfsigned") return tandem::cli::RunTlsSelfsigned(args);
  if (command == "--help" || command == "-h" || command == "help") {
    std::fputs(kUsage, stdout);
    return 0;
  }
  std::fprintf(stderr, "tandem: unknown command '%s'\n%s", command.c_str(), kUsage);
  return 2;
}
