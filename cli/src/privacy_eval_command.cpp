// tandem privacy-eval: how many tokens a cloud tail recovers from the boundary rows it receives.
//
// For every cut k and codec, the boundary rows of each golden sequence (blocks [0, k), through the codec,
// exactly what the tail decodes) are attacked three ways:
//   search   the tail knows the edge's weights: position by position, given the tokens it recovered so far,
//            it runs each candidate token through blocks [0, k) and the codec, and keeps the one whose row
//            is nearest to the received row. Candidates are tried nearest-embedding first and the search
//            stops at the first that matches (relative distance < kMatchDistance).
//   nearest  the tail knows only the token embedding (it holds it whenever the head is tied to it): the
//            embedding row most similar (cosine) to the received row.
//   linear   the tail knows no weights but learns: the tokens it samples are the inputs of the rows it
//            receives next, so every generated position is a labelled example. A least-squares map from
//            rows to one-hot tokens, fitted on the generated positions of half the sequences, is scored on
//            every position of the other half (then the halves swap).
// With --noise s, the edge adds Gaussian noise of s times each row's RMS to the rows before the codec (a
// mitigation); the table then also gives its cost: how often the tail's greedy next token, computed from
// the noisy rows, still equals the golden one.
#include <nlohmann/json.hpp>

#include <ATen/ATen.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <limits>
#include <numeric>
#include <optional>
#include <random>
#include <span>
#include <sstream>

#include "cli_support.hpp"
#include "commands.hpp"
#include "tandem/wire/activation_codec.hpp"

namespace tandem::cli {
namespace {

constexpr const char* kCommand = "privacy-eval";
// A candidate whose coded row is this close (L2, relative to the received row's norm) is the token: the
// right one differs only by float rounding (the edge ran a prefill, the attack runs decode steps), which
// coding may amplify by a quantization step here and there; distinct tokens' rows lie much farther apart.
constexpr double kMatchDistance = 0.05;

// Each row scaled to unit L2 norm (for cosine similarity).
at::Tensor UnitRows(const at::Tensor& rows) {
  return rows / rows.norm(2, /*dim=*/1, /*keepdim=*/true).clamp_min(1e-12);
}

// What the edge sends and how: the cut, the codec, and the noise added to each row first.
struct Setting {
  int cut = 0;
  ActivationCodec codec;
  double noise = 0;  // standard deviation, in units of the row's RMS
};

// Adds noise of `relative` times each row's RMS to `rows` [n, dim] in place, reproducibly from `seed`.
void AddNoise(at::Tensor& rows, double relative, uint64_t seed) {
  if (relative <= 0) return;
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  const at::Tensor rms = rows.pow(2).mean(1).sqrt();
  float* values = rows.data_ptr<float>();
  for (int64_t r = 0; r < rows.size(0); ++r) {
    const auto scale = static_cast<float>(relative) * rms[r].item<float>();
    for (int64_t c = 0; c < rows.size(1); ++c) values[r * rows.size(1) + c] += scale * normal(rng);
  }
}

// The rows that cross the cut for `ids` (one prefill of blocks [0, cut), noise, codec), as the tail
// decodes them.
Result<at::Tensor> ReceivedRows(const Transformer& model, const std::vector<int>& ids, const Setting& setting,
                                uint64_t seed) {
  KvCache cache(model.config(), BlockRange{0, setting.cut}, static_cast<int>(ids.size()));
  TANDEM_ASSIGN_OR_RETURN(at::Tensor hidden, model.Embed(ids));
  TANDEM_RETURN_IF_ERROR(model.RunBlocks(hidden, cache));
  AddNoise(hidden, setting.noise, seed);
  return PassThroughCodec(hidden, setting.codec);
}

// How many of the sequence's continuation positions the tail still predicts (greedy next token equal to
// the golden one) from the received rows.
Result<int64_t> TailAgreement(const Transformer& model, const std::vector<int>& ids, int prompt_tokens,
                              int cut, const at::Tensor& received) {
  KvCache cache(model.config(), BlockRange{cut, model.n_layers()}, static_cast<int>(ids.size()));
  at::Tensor hidden = received.clone();
  TANDEM_RETURN_IF_ERROR(model.RunBlocks(hidden, cache));
  TANDEM_ASSIGN_OR_RETURN(const at::Tensor logits, model.Logits(hidden));
  const at::Tensor predicted = logits.argmax(1);
  int64_t agree = 0;
  for (size_t i = prompt_tokens - 1; i + 1 < ids.size(); ++i) {
    agree += predicted[static_cast<int64_t>(i)].item<int64_t>() == ids[i + 1];
  }
  return agree;
}

// The search attack on one sequence's received rows: the recovered ids.
// Without noise a candidate within kMatchDistance is the token and ends the search; with noise the right
// candidate is only the likeliest one, so every candidate is tried and the nearest wins.
Result<std::vector<int>> SearchAttack(const Transformer& model, const Setting& setting,
                                      const at::Tensor& received, const at::Tensor& embeddings,
                                      int64_t& candidates_tried) {
  const int positions = static_cast<int>(received.size(0));
  const double match_distance = setting.noise > 0 ? 0 : kMatchDistance;
  KvCache cache(model.config(), BlockRange{0, setting.cut}, positions);
  const at::Tensor similarity = at::matmul(UnitRows(received), UnitRows(embeddings).t());
  std::vector<int> recovered;
  for (int position = 0; position < positions; ++position) {
    const at::Tensor target = received[position];
    const double target_norm = std::max(target.norm().item<double>(), 1e-12);
    const at::Tensor order = similarity[position].argsort(/*dim=*/0, /*descending=*/true);
    const auto* candidates = order.data_ptr<int64_t>();
    int best = -1;
    double best_distance = std::numeric_limits<double>::infinity();
    for (int64_t i = 0; i < order.numel() && best_distance >= match_distance; ++i) {
      at::Tensor row = embeddings.narrow(0, candidates[i], 1).clone();
      TANDEM_RETURN_IF_ERROR(model.RunBlocks(row, cache));
      cache.Truncate(position);
      ++candidates_tried;
      TANDEM_ASSIGN_OR_RETURN(const at::Tensor coded, PassThroughCodec(row, setting.codec));
      const double distance = (coded[0] - target).norm().item<double>() / target_norm;
      if (distance < best_distance) {
        best_distance = distance;
        best = static_cast<int>(candidates[i]);
      }
    }
    at::Tensor chosen = embeddings.narrow(0, best, 1).clone();
    TANDEM_RETURN_IF_ERROR(model.RunBlocks(chosen, cache));
    recovered.push_back(best);
  }
  return recovered;
}

struct Sequence {
  std::vector<int> ids;
  int prompt_tokens = 0;
  at::Tensor received;  // [ids, dim]
};

// The linear attack: fitted on the generated positions of `train`, scored on every position of `test`.
int64_t LinearAttackHits(const std::vector<const Sequence*>& train, const std::vector<const Sequence*>& test,
                         int vocab_size) {
  std::vector<at::Tensor> rows;
  std::vector<int64_t> labels;
  for (const Sequence* sequence : train) {
    const int64_t n = static_cast<int64_t>(sequence->ids.size());
    rows.push_back(sequence->received.narrow(0, sequence->prompt_tokens, n - sequence->prompt_tokens));
    labels.insert(labels.end(), sequence->ids.begin() + sequence->prompt_tokens, sequence->ids.end());
  }
  if (labels.empty()) return 0;
  const auto with_bias = [](const at::Tensor& x) { return at::cat({x, at::ones({x.size(0), 1})}, 1); };
  const at::Tensor x = with_bias(at::cat(rows)).to(at::kDouble);
  const at::Tensor y = at::one_hot(at::tensor(labels, at::kLong), vocab_size).to(at::kDouble);
  const at::Tensor gram = at::matmul(x.t(), x);
  // A small ridge keeps the normal equations solvable when rows are fewer or collinear.
  const double ridge = 1e-3 * gram.trace().item<double>() / static_cast<double>(gram.size(0));
  const at::Tensor weights =
      at::linalg_solve(gram + ridge * at::eye(gram.size(0), at::kDouble), at::matmul(x.t(), y));
  int64_t hits = 0;
  for (const Sequence* sequence : test) {
    const at::Tensor predicted = at::matmul(with_bias(sequence->received).to(at::kDouble), weights).argmax(1);
    hits += predicted.eq(at::tensor(sequence->ids, at::kLong)).sum().item<int64_t>();
  }
  return hits;
}

struct CutResult {
  int cut = 0;
  std::string codec;
  double noise = 0;
  int64_t positions = 0, search_hits = 0, nearest_hits = 0, linear_hits = 0;
  int64_t continuations = 0, agreements = 0;  // the tail's next-token predictions, and those still right
  double candidates_per_position = 0, seconds = 0;
  double Rate(int64_t hits) const {
    return positions > 0 ? 100.0 * static_cast<double>(hits) / positions : 0;
  }
  double AgreementRate() const {
    return continuations > 0 ? 100.0 * static_cast<double>(agreements) / continuations : 0;
  }
};

Result<CutResult> EvaluateCut(const Transformer& model, const std::vector<GoldenRecord>& records,
                              const Setting& setting, int max_positions, const at::Tensor& embeddings) {
  const auto start = std::chrono::steady_clock::now();
  CutResult result{.cut = setting.cut, .codec = setting.codec.Name(), .noise = setting.noise};
  std::vector<Sequence> sequences;
  for (const GoldenRecord& record : records) {
    Sequence sequence;
    sequence.ids.assign(record.ids.begin(),
                        record.ids.begin() + std::min<size_t>(record.ids.size(), max_positions));
    sequence.prompt_tokens = static_cast<int>(std::min(record.prompt_ids.size(), sequence.ids.size()));
    TANDEM_ASSIGN_OR_RETURN(sequence.received,
                            ReceivedRows(model, sequence.ids, setting, sequences.size() + 1));
    TANDEM_ASSIGN_OR_RETURN(const int64_t agree, TailAgreement(model, sequence.ids, sequence.prompt_tokens,
                                                               setting.cut, sequence.received));
    result.agreements += agree;
    result.continuations += static_cast<int64_t>(sequence.ids.size()) - sequence.prompt_tokens;
    sequences.push_back(std::move(sequence));
  }
  const at::Tensor unit_embeddings = UnitRows(embeddings);
  int64_t candidates = 0;
  for (const Sequence& sequence : sequences) {
    TANDEM_ASSIGN_OR_RETURN(const std::vector<int> recovered,
                            SearchAttack(model, setting, sequence.received, embeddings, candidates));
    const at::Tensor nearest = at::matmul(UnitRows(sequence.received), unit_embeddings.t()).argmax(1);
    for (size_t i = 0; i < sequence.ids.size(); ++i) {
      result.search_hits += recovered[i] == sequence.ids[i];
      result.nearest_hits += nearest[static_cast<int64_t>(i)].item<int64_t>() == sequence.ids[i];
    }
    result.positions += static_cast<int64_t>(sequence.ids.size());
  }
  std::vector<const Sequence*> even, odd;
  for (size_t i = 0; i < sequences.size(); ++i) (i % 2 == 0 ? even : odd).push_back(&sequences[i]);
  const int vocab = model.config().vocab_size;
  result.linear_hits = LinearAttackHits(even, odd, vocab) + LinearAttackHits(odd, even, vocab);
  if (odd.empty()) result.linear_hits = 0;  // one sequence: nothing to learn from but itself
  result.candidates_per_position = static_cast<double>(candidates) / static_cast<double>(result.positions);
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return result;
}

std::string Percent(double value) {
  char text[16];
  std::snprintf(text, sizeof(text), "%.1f%%", value);
  return text;
}

std::string MarkdownTable(const std::vector<CutResult>& results) {
  std::string md =
      "| cut k | codec | noise | positions | search (weights known) | nearest embedding | linear (learned) | "
      "tail next-token agreement |\n"
      "|---:|---|---:|---:|---:|---:|---:|---:|\n";
  for (const CutResult& r : results) {
    char noise[16];
    std::snprintf(noise, sizeof(noise), "%.2f", r.noise);
    md += "| " + std::to_string(r.cut) + " | " + r.codec + " | " + noise + " | " +
          std::to_string(r.positions) + " | " + Percent(r.Rate(r.search_hits)) + " | " +
          Percent(r.Rate(r.nearest_hits)) + " | " + Percent(r.Rate(r.linear_hits)) + " | " +
          Percent(r.AgreementRate()) + " |\n";
  }
  return md;
}

struct PrivacyEvalFlags {
  ModelFlags model;
  std::string golden_path, cuts_text, codecs_text = "fp32,int8", noise_text = "0", out_dir;
  int max_positions = 128;
};

// Parses the flags and checks what needs no model; an exit code when the command ends there.
std::optional<int> ParsePrivacyEvalFlags(std::span<const std::string> args, PrivacyEvalFlags& f) {
  f.model.threads = 1;  // the attack runs one row at a time: threads only add hand-overs
  FlagSet flags(
      "usage: tandem privacy-eval --model M --golden FILE [--cuts 1,2,3,4] [--codecs fp32,int8]\n"
      "       [--noise 0,0.1] [--max-positions 128] [--out-dir DIR]\n\n"
      "Token-recovery rate of three inversion attacks by the tail on the boundary rows it receives, for\n"
      "every cut and codec: search (the tail knows the edge's weights), nearest embedding row, and a\n"
      "linear inverse learned from the tokens the tail itself samples. See docs/privacy.md.");
  f.model.Declare(flags, kModelFlagHelp);
  flags.String("golden", &f.golden_path, "the text set: JSON lines with prompt_ids and ids (a golden file)");
  flags.String("cuts", &f.cuts_text, "cuts k, comma-separated (default: every cut 1..L-1)");
  flags.String("codecs", &f.codecs_text, "codecs, comma-separated");
  flags.String(
      "noise", &f.noise_text,
      "noise levels added to the rows before the codec, comma-separated (standard deviation in units of "
      "each row's RMS; 0 = none)");
  flags.Int("max-positions", &f.max_positions, "positions of each sequence evaluated (from its start)");
  flags.String("out-dir", &f.out_dir, "also write privacy-eval.json, .md and .csv here");
  if (auto exit = ParseFlags(flags, args, kCommand)) return *exit;
  for (const char* name : {"model", "golden"}) {
    if (Status status = Require(flags, name); !status.ok()) return Fail(kCommand, status, kExitUsage);
  }
  if (f.max_positions < 2) return Fail(kCommand, InvalidArgument("--max-positions must be >= 2"), kExitUsage);
  if (!f.model.int8_blocks.empty() || f.model.int8_head || !f.model.int4_blocks.empty() ||
      f.model.int4_head) {
    return Fail(kCommand,
                InvalidArgument("the attack runs on the float32 model: no --int8-blocks or --int4-blocks"),
                kExitUsage);
  }
  return std::nullopt;
}

// The levels of --noise, each in 0..10; none given is no noise.
Result<std::vector<double>> ParseNoiseLevels(std::string_view text) {
  std::vector<double> levels;
  for (const std::string_view item : ListItems(text)) {
    char* end = nullptr;
    const std::string level_text(item);
    const double level = std::strtod(level_text.c_str(), &end);
    if (end == level_text.c_str() || *end != '\0' || !(level >= 0 && level <= 10)) {
      return InvalidArgument("--noise: '" + level_text + "' is not a level in 0..10");
    }
    levels.push_back(level);
  }
  if (levels.empty()) levels.push_back(0);
  return levels;
}

// --cuts, or every cut 1..L-1 when none is given.
Result<std::vector<int>> ParseCuts(std::string_view text, int layers) {
  TANDEM_ASSIGN_OR_RETURN(std::vector<int> cuts, ParseIntList(text, 1, layers - 1, "cuts"));
  if (cuts.empty()) {
    cuts.resize(layers - 1);
    std::iota(cuts.begin(), cuts.end(), 1);
  }
  return cuts;
}

// Every (cut, codec, noise) in turn, a progress line on stderr for each.
Result<std::vector<CutResult>> EvaluateAll(const Transformer& model, const std::vector<GoldenRecord>& records,
                                           const std::vector<Setting>& settings, int max_positions) {
  std::vector<int> vocabulary(model.config().vocab_size);
  std::iota(vocabulary.begin(), vocabulary.end(), 0);
  TANDEM_ASSIGN_OR_RETURN(const at::Tensor embeddings, model.Embed(vocabulary));
  std::vector<CutResult> results;
  for (const Setting& setting : settings) {
    TANDEM_ASSIGN_OR_RETURN(const CutResult r,
                            EvaluateCut(model, records, setting, max_positions, embeddings));
    std::fprintf(stderr,
                 "cut %d %s noise %.2f: search %.1f%%, nearest %.1f%%, linear %.1f%%, agreement %.1f%% "
                 "(%.0f candidates/position, %.1f s)\n",
                 r.cut, r.codec.c_str(), r.noise, r.Rate(r.search_hits), r.Rate(r.nearest_hits),
                 r.Rate(r.linear_hits), r.AgreementRate(), r.candidates_per_position, r.seconds);
    results.push_back(r);
  }
  return results;
}

nlohmann::json ToJson(const CutResult& r) {
  return {{"cut", r.cut},
          {"codec", r.codec},
          {"noise", r.noise},
          {"positions", r.positions},
          {"search_rate", r.Rate(r.search_hits) / 100},
          {"nearest_rate", r.Rate(r.nearest_hits) / 100},
          {"linear_rate", r.Rate(r.linear_hits) / 100},
          {"tail_agreement", r.AgreementRate() / 100},
          {"search_candidates_per_position", r.candidates_per_position},
          {"seconds", r.seconds}};
}

std::string Csv(const std::vector<CutResult>& results) {
  std::ostringstream csv;
  csv << "cut,codec,noise,positions,search_rate,nearest_rate,linear_rate,tail_agreement\n";
  for (const CutResult& r : results) {
    csv << r.cut << ',' << r.codec << ',' << r.noise << ',' << r.positions << ','
        << r.Rate(r.search_hits) / 100 << ',' << r.Rate(r.nearest_hits) / 100 << ','
        << r.Rate(r.linear_hits) / 100 << ',' << r.AgreementRate() / 100 << '\n';
  }
  return csv.str();
}

// privacy-eval.json, .md and .csv in --out-dir.
Status WriteReports(const PrivacyEvalFlags& f, size_t sequences, const std::vector<CutResult>& results,
                    const std::string& table) {
  nlohmann::json json_results = nlohmann::json::array();
  for (const CutResult& r : results) json_results.push_back(ToJson(r));
  const nlohmann::json report = {{"model", f.model.model},           {"golden", f.golden_path},
                                 {"sequences", sequences},           {"max_positions", f.max_positions},
                                 {"match_distance", kMatchDistance}, {"results", json_results}};
  const std::filesystem::path dir(f.out_dir);
  for (const Status& written :
       {WriteText(dir / "privacy-eval.json", report.dump(2) + "\n"),
        WriteText(dir / "privacy-eval.md", table), WriteText(dir / "privacy-eval.csv", Csv(results))}) {
    TANDEM_RETURN_IF_ERROR(written);
  }
  return Status::Ok();
}

}  // namespace

int RunPrivacyEval(std::span<const std::string> args) {
  PrivacyEvalFlags f;
  if (auto exit = ParsePrivacyEvalFlags(args, f)) return *exit;
  const auto codecs = ParseCodecList(f.codecs_text, "codecs");
  if (!codecs.ok()) return Fail(kCommand, codecs.status(), kExitUsage);
  const auto noise_levels = ParseNoiseLevels(f.noise_text);
  if (!noise_levels.ok()) return Fail(kCommand, noise_levels.status(), kExitUsage);
  if (!f.out_dir.empty()) {
    // Before the evaluation, so that an unusable --out-dir costs no work.
    if (Status made = CreateDirectories(f.out_dir); !made.ok()) return Fail(kCommand, made);
  }
  auto records = ReadGolden(f.golden_path);
  if (!records.ok()) return Fail(kCommand, records.status());
  auto model = LoadModel(f.model);
  if (!model.ok()) return Fail(kCommand, model.status());
  const Transformer& transformer = *model->transformer;
  const auto cuts = ParseCuts(f.cuts_text, transformer.n_layers());
  if (!cuts.ok()) return Fail(kCommand, cuts.status(), kExitUsage);
  std::vector<Setting> settings;
  for (const int cut : *cuts) {
    for (const ActivationCodec& codec : *codecs) {
      for (const double noise : *noise_levels) settings.push_back({cut, codec, noise});
    }
  }
  const auto results = EvaluateAll(transformer, *records, settings, f.max_positions);
  if (!results.ok()) return Fail(kCommand, results.status());
  const std::string table = MarkdownTable(*results);
  std::printf("%s", table.c_str());
  if (!f.out_dir.empty()) {
    if (Status written = WriteReports(f, records->size(), *results, table); !written.ok()) {
      return Fail(kCommand, written);
    }
  }
  return 0;
}

}  // namespace tandem::cli
