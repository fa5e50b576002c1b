// What the subcommands share: flag parsing with uniform exit codes and one-line errors. Model flags and
// loading are tandem::ModelFlags and tandem::LoadModel (model_loader.hpp), shared with the services.
#pragma once

#include <sys/types.h>

#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "tandem/base/exit_codes.hpp"
#include "tandem/base/flags.hpp"
#include "tandem/base/stats.hpp"
#include "tandem/base/status.hpp"
#include "tandem/base/strings.hpp"
#include "tandem/engine/model_loader.hpp"
#include "tandem/engine/transformer.hpp"
#include "tandem/text/tokenizer.hpp"
#include "tandem/wire/activation_codec.hpp"

namespace tandem::cli {

// Parses `args`; on --help prints usage and returns 0, on error prints one line and returns kExitUsage;
// returns nullopt when the command should go on.
std::optional<int> ParseFlags(FlagSet& flags, std::span<const std::string> args, const char* command);

// Prints "tandem <command>: <message>" on one line to stderr and returns `exit_code`.
int Fail(const char* command, const Status& status, int exit_code = kExitFailure);

// Shapes of the public llama2.c TinyStories models by name: tiny, stories15M, stories110M.
const std::map<std::string, ModelConfig>& ModelShapes();

// A golden file's record: the prompt's ids (BOS first) and the whole sequence, prompt included.
struct GoldenRecord {
  std::vector<int> prompt_ids;
  std::vector<int> ids;
};
// Reads JSON lines with prompt_ids and ids (e.g. ../shared/golden/stories260K-greedy.jsonl); errors name
// the file and line.
Result<std::vector<GoldenRecord>> ReadGolden(const std::string& path);
// The "prompt" of each JSON line of `path` (a golden file, or any JSONL with that field); errors name the
// file and line.
Result<std::vector<std::string>> ReadPrompts(const std::string& path);

// `value` with `digits` decimals ("%.*f": "1.27").
std::string FixedPoint(double value, int digits);

// The items of a comma-separated flag value; "" has none, and a trailing comma adds none.
std::vector<std::string_view> ListItems(std::string_view text);

// The integers of a comma-separated flag value, each within [min, max]; errors name `flag`.
Result<std::vector<int>> ParseIntList(std::string_view text, int min, int max, const std::string& flag);
// The codecs of a comma-separated flag value ("fp32,int8+zstd"); none is an error naming `flag`.
Result<std::vector<ActivationCodec>> ParseCodecList(std::string_view text, const std::string& flag);

// `rows` [n, cols] as a tail decodes them after `codec` (encoded, then decoded).
Result<at::Tensor> PassThroughCodec(const at::Tensor& rows, ActivationCodec codec);

// Creates `dir` and its parents when missing; an error naming it when that fails.
Status CreateDirectories(const std::filesystem::path& dir);
// Writes `text` to `path`, replacing it; an error naming the file when it cannot.
Status WriteText(const std::filesystem::path& path, const std::string& text);
// Writes `text` to a new file `path` created with `mode` (a key is never readable by others, even for a
// moment); with `replace`, an existing file is overwritten and gets `mode`, else it is an error that
// points at --force.
Status WriteFileWithMode(const std::string& path, const std::string& text, mode_t mode, bool replace);

// Checks that a required flag was given.
Status Require(const FlagSet& flags, const std::string& name);
// Checks that a required flag was given and is not empty (--out "" names no file).
Status RequireNonEmpty(const FlagSet& flags, const std::string& name, const std::string& value);
// --model, and --tokenizer unless the model is a Hugging Face directory (which holds its tokenizer).
Status RequireModelAndTokenizer(const FlagSet& flags, const std::string& model);

// The text of generated `ids` (BOS, prompt, completion) as a reader sees it: end-of-text tokens after the
// first left out.
std::string CompletionText(const Tokenizer& tokenizer, const std::vector<int>& ids);

}  // namespace tandem::cli
