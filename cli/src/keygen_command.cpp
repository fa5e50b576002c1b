#include <cstdio>
#include <filesystem>

#include "cli_support.hpp"
#include "commands.hpp"
#include "tandem/services/request_signing.hpp"
#include "tandem/wire/curve.hpp"

namespace tandem::cli {
namespace {

constexpr const char* kCommand = "keygen";

}  // namespace

int RunControlSecret(std::span<const std::string> args) {
  constexpr const char* kName = "control-secret";
  std::string out;
  bool force = false;
  FlagSet flags(
      "usage: tandem control-secret --out FILE [--force]\n\n"
      "Writes a new control-plane secret (64 hex digits, mode 0600) for --control-secret-file: give the "
      "same\n"
      "file to tandem-scheduler, every tandem-cloud and every tandem-edge of the deployment.");
  flags.String("out", &out, "the file to write");
  flags.Bool("force", &force, "replace an existing file");
  if (auto exit = ParseFlags(flags, args, kName)) return *exit;
  if (Status status = RequireNonEmpty(flags, "out", out); !status.ok())
    return Fail(kName, status, kExitUsage);
  Result<std::string> secret = services::NewControlSecret();
  if (!secret.ok()) return Fail(kName, secret.status());
  if (Status written = WriteFileWithMode(out, *secret, 0600, force); !written.ok())
    return Fail(kName, written);
  std::printf("control secret file: %s\n", out.c_str());
  return 0;
}

int RunKeygen(std::span<const std::string> args) {
  std::string out;
  bool force = false;
  FlagSet flags(
      "usage: tandem keygen --out PREFIX [--force]\n\n"
      "Writes a CURVE key pair for the encrypted edge-cloud link: PREFIX.key (the secret key, mode 0600;\n"
      "keep it on its host) and PREFIX.pub (the public key: give it to the peer; a server's allow list\n"
      "holds its clients' public keys, one per line).");
  flags.String("out", &out, "path prefix of the two files");
  flags.Bool("force", &force, "replace existing PREFIX.key and PREFIX.pub");
  if (auto exit = ParseFlags(flags, args, kCommand)) return *exit;
  if (Status status = RequireNonEmpty(flags, "out", out); !status.ok())
    return Fail(kCommand, status, kExitUsage);
  const std::string secret_path = out + ".key";
  const std::string public_path = out + ".pub";
  if (!force) {
    // WriteCurveKeyPair refuses too; checking here lets the message point at --force.
    for (const std::string& path : {secret_path, public_path}) {
      std::error_code error;
      if (std::filesystem::exists(std::filesystem::symlink_status(path, error))) {
        return Fail(kCommand, InvalidArgument("'" + path + "' already exists; --force replaces it"));
      }
    }
  }
  Result<CurveKeyPair> keys = GenerateCurveKeyPair();
  if (!keys.ok()) return Fail(kCommand, keys.status());
  if (Status written = WriteCurveKeyPair(*keys, out, force); !written.ok()) return Fail(kCommand, written);
  std::printf("secret key file: %s\npublic key file: %s\npublic key: %s\n", secret_path.c_str(),
              public_path.c_str(), keys->public_key.c_str());
  return 0;
}

}  // namespace tandem::cli
