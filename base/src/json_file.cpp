#include "tandem/base/json_file.hpp"

#include <fstream>
#include <iterator>
#include <string>

namespace tandem {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// config.json, generation_config.json and tokenizer_config.json are kilobytes; some tokenizer_config.json
// carry chat templates and added-token tables of a few MB.
constexpr std::uintmax_t kMaxConfigBytes = std::uintmax_t{64} << 20;

}  // namespace

Result<std::optional<json>> ReadJsonObjectIfExists(const fs::path& path) {
  std::error_code error;
  if (!fs::exists(path, error)) return std::optional<json>();
  const std::uintmax_t size = fs::file_size(path, error);
  if (error) return InvalidArgument(path.string() + ": " + error.message());
  if (size > kMaxConfigBytes)
    return InvalidArgument(path.string() + ": larger than " + std::to_string(kMaxConfigBytes) + " bytes");
  std::ifstream in(path, std::ios::binary);
  if (!in) return InvalidArgument(path.string() + ": cannot open");
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  json doc;
  try {
    doc = json::parse(text);
  } catch (const json::exception& e) {
    return InvalidArgument(path.string() + ": not valid JSON: " + e.what());
  }
  if (!doc.is_object()) return InvalidArgument(path.string() + ": not a JSON object");
  return std::optional<json>(std::move(doc));
}

}  // namespace tandem
