// Reading a model directory's small JSON files (config.json, tokenizer_config.json, ...). Internal to
// tandem_common.
#pragma once

#include <nlohmann/json.hpp>

#include <filesystem>
#include <optional>

#include "tandem/base/status.hpp"

namespace tandem {

// The JSON object in `path`; nullopt when the file does not exist. A file over 64 MB, one that cannot be
// read, invalid JSON or a value other than an object is an error naming the file.
Result<std::optional<nlohmann::json>> ReadJsonObjectIfExists(const std::filesystem::path& path);

}  // namespace tandem
