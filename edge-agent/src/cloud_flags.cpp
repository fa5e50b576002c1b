#include "tandem/edge_agent/cloud_flags.hpp"

#include "tandem/base/log.hpp"
#include "tandem/wire/curve.hpp"

namespace tandem::edge_agent {

void CloudFlags::Declare(FlagSet& flags) {
  flags.List("cloud", &endpoint, "cloud tail endpoint, e.g. tcp://127.0.0.1:5555 (runs the tail there)");
  flags.String("cloud-key", &cloud_key, "the cloud tail's public key file (PREFIX.pub from tandem keygen)");
  flags.String("client-key", &client_key,
               "this edge's secret key file (PREFIX.key), allow-listed by the tail");
  flags.Bool("insecure", &insecure, "plaintext ZeroMQ without CURVE: no encryption, no authentication");
  flags.String("codec", &codec, "activation codec: fp32|fp16|bf16|int8|int4, optionally +lz4 or +zstd");
  flags.Int("timeout-ms", &timeout_ms, "longest wait for any reply from the cloud tail");
  flags.Int("resend-ms", &resend_ms,
            "a step unanswered this long is sent again, then after growing pauses (0 = never)");
  flags.Int("max-resends", &max_resends, "times one step may be sent again within --timeout-ms");
}

Status CloudFlags::Validate() const {
  TANDEM_RETURN_IF_ERROR(ParseActivationCodec(codec).status());
  if (timeout_ms <= 0) return InvalidArgument("--timeout-ms must be positive");
  if (resend_ms < 0 || max_resends < 0) {
    return InvalidArgument("--resend-ms and --max-resends must not be negative");
  }
  if (!enabled()) return Status::Ok();
  if (insecure && (!cloud_key.empty() || !client_key.empty())) {
    return InvalidArgument("--insecure cannot be combined with --cloud-key or --client-key");
  }
  if (!insecure && (cloud_key.empty() || client_key.empty())) {
    return InvalidArgument("--cloud needs --cloud-key and --client-key (or --insecure for plaintext)");
  }
  return Status::Ok();
}

Result<CloudOptions> CloudFlags::Resolve() const {
  TANDEM_RETURN_IF_ERROR(Validate());
  CloudOptions options;
  if (!enabled()) return options;  // no tail: no keys to read
  options.endpoint = endpoint;
  options.timeout = std::chrono::milliseconds(timeout_ms);
  options.resend_after = std::chrono::milliseconds(resend_ms);
  options.max_resends = max_resends;
  options.security.insecure = insecure;
  if (insecure) {
    Log(LogLevel::kWarn, "edge", "CURVE is off (--insecure): activations cross the network unencrypted",
        {{"cloud", endpoint}});
    return options;
  }
  TANDEM_ASSIGN_OR_RETURN(options.security.server_public_key, ReadPublicKeyFile(cloud_key));
  TANDEM_ASSIGN_OR_RETURN(options.security.own_keys, ReadSecretKeyFile(client_key));
  return options;
}

}  // namespace tandem::edge_agent
