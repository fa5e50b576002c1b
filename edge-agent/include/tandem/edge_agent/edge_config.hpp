// Every setting of tandem-edge in one struct: each declared once with its flag, its TANDEM_* environment
// variable and its help (Declare), checked without touching a file (Validate), then turned into what the
// service's parts take (planner options, the fixed split, the API key, the model's name in the API).
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "tandem/base/flags.hpp"
#include "tandem/edge_agent/cloud_flags.hpp"
#include "tandem/edge_agent/edge_planner.hpp"
#include "tandem/engine/drafter.hpp"
#include "tandem/engine/model_loader.hpp"
#include "tandem/scheduler/planner.hpp"
#include "tandem/services/request_signing.hpp"
#include "tandem/services/service_main.hpp"

namespace tandem::edge_agent {

struct EdgeConfig {
  ModelFlags model;
  std::string tokenizer;
  std::string model_name;     // what /v1/models lists; default: the model file's stem
  std::string chat_template;  // --chat-template NAME|FILE; empty: the model directory's, if any
  CloudFlags cloud;
  std::string split = "auto";
  std::string listen = "127.0.0.1:8080";
  services::TlsFlags tls;  // --tls-cert, --tls-key, --tls-client-ca
  std::string api_key;
  std::string api_key_file;
  int max_concurrent = 2;
  int max_queue = 8;
  int max_tokens = 0;
  int max_body_kb = 256;
  int drain_timeout_s = 20;
  // The planner (--split auto).
  std::string scheduler;
  int scheduler_timeout_ms = 300;
  services::ControlSecretFlag control_secret;  // signs plan requests; Load() before PlannerOptions()
  services::HttpClientTlsFlags scheduler_tls{
      .prefix = "scheduler-", .peer_flag = "--scheduler"};  // likewise: an https:// --scheduler
  std::string objective = "weighted:1,1";
  int min_edge_blocks = 1;
  int max_edge_blocks = -1;
  std::string allowed_codecs = "fp32";
  int max_int8_blocks = -1;
  bool allow_local = true;
  bool private_output = false;
  int tail_end = 0;
  int replan_tokens = 16;
  float hysteresis_gain = 0.1f;
  int hysteresis_ms = 500;
  int probe_ms = 200;
  // Speculative decoding (drafter and tokens per step; each request may override both).
  std::string draft = "none";
  std::string draft_tokens = "auto";

  void Declare(FlagSet& flags);
  // The flags' values and combination (a usage error); reads no file.
  Status Validate() const;

  // --cloud: one endpoint, or several separated by commas (replicas share the server key pair).
  std::vector<std::string> CloudEndpoints() const;
  // --draft's drafters, the first the default, with the models they run on.
  Result<std::vector<DraftModels>> LoadDrafters(const std::shared_ptr<const Transformer>& model) const;
  // --allowed-codecs, parsed.
  Result<std::vector<ActivationCodec>> Codecs() const;
  // For a validated config.
  EdgePlannerOptions PlannerOptions() const;
  // The model's id in the API: --model-name, else a directory's name ("Qwen2.5-0.5B/" too) or a file's
  // without its extension.
  std::string ModelName() const;
  // --api-key, or the first line of --api-key-file; empty: no authentication.
  Result<std::string> ReadApiKey() const;
  // --split K as a fixed choice on the first --cloud tail (K = layers: all-local); nullopt for auto.
  Result<std::optional<scheduler::Candidate>> ResolveSplit(int layers, ActivationCodec codec) const;
};

}  // namespace tandem::edge_agent
