// Where blocks [K, L) of a run go: nowhere (all local), through the activation codec in this process
// (--split K), or to a cloud tail (--split K --cloud ...). Shared by generate and bench.
#pragma once

#include <nlohmann/json_fwd.hpp>

#include <memory>

#include "tandem/edge_agent/cloud_flags.hpp"
#include "tandem/engine/model_loader.hpp"
#include "tandem/engine/pipeline.hpp"

namespace tandem::cli {

struct SplitFlags {
  int split = -1;    // -1: all local
  int tail_end = 0;  // private output: the tail runs [split, tail_end), this side the rest; 0: off
  edge_agent::CloudFlags cloud;

  void Declare(FlagSet& flags);
  // A usage error when the flags do not fit together or with a model of `layers` blocks.
  Status Validate(int layers) const;
};

class TailFactory {
 public:
  // Validates the flags; with --cloud, connects and handshakes once for every tail it will make.
  // Callers run SplitFlags::Validate first, so that usage errors are told apart from run-time ones.
  static Result<std::unique_ptr<TailFactory>> Create(const LoadedModel& model, const SplitFlags& flags);
  // Tails on the cloud tail at `options.endpoint`, cut at `cut`, rows sent with `codec`.
  // With `tail_end` > cut, private output: the tail runs [cut, tail_end) and returns its rows.
  static Result<std::unique_ptr<TailFactory>> Connect(const LoadedModel& model, int cut,
                                                      ActivationCodec codec,
                                                      const edge_agent::CloudOptions& options,
                                                      int tail_end = 0);
  ~TailFactory();

  int cut() const { return cut_; }
  // A tail for one session of up to `capacity` positions, at the flags' cut or at `cut`; with private
  // output a UShapedTail, whose middle is remote (or looped through the codec) and whose rest is local.
  Result<std::unique_ptr<TailRunner>> NewTail(int capacity, SamplingParams sampling, int cut = -1);
  // What crossed the cut, for --json: codec and bytes; with a cloud, wire bytes and per-step timings.
  nlohmann::json Report(const TailRunner& tail) const;

 private:
  TailFactory(const LoadedModel& model, int cut, bool split, ActivationCodec codec, int tail_end = 0)
      : model_(model), cut_(cut), tail_end_(tail_end), split_(split), codec_(codec) {}

  const LoadedModel& model_;
  int cut_;
  int tail_end_;
  bool split_;
  ActivationCodec codec_;
  std::unique_ptr<zmq::context_t> context_;
  std::unique_ptr<edge_agent::CloudConnection> connection_;
};

}  // namespace tandem::cli
