// Fuzz target: ChatTemplate::FromSource on an arbitrary Jinja source (a template file given with
// --chat-template, or a model directory's), then Render on a small conversation. Every source must load
// or be refused with an error, and every render must give text or an error: never an exception, a crash,
// a hang (the interpreter's step bound) or a stack overflow (its nesting bounds).
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>
#include <vector>

#include "fuzz_support.hpp"
#include "tandem/text/chat_template.hpp"

namespace {

const std::vector<tandem::ChatMessage> kConversation = {{"system", "Be brief."},
                                                        {"user", "Hi {{ there }} \xf0\x9f\x99\x82"},
                                                        {"assistant", "Hello!"},
                                                        {"user", "Bye"}};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string source(reinterpret_cast<const char*>(data), size);
  try {
    auto loaded = tandem::ChatTemplate::FromSource(std::move(source), "<s>", "</s>", "fuzz");
    if (!loaded.ok()) {
      FUZZ_CHECK(!loaded.status().message().empty());
      return 0;
    }
    for (const bool generation_prompt : {true, false}) {
      auto rendered = loaded->Render(kConversation, generation_prompt);
      if (!rendered.ok()) FUZZ_CHECK(!rendered.status().message().empty());
    }
  } catch (const std::exception& error) {
    std::fprintf(stderr, "the chat template threw: %s\n", error.what());
    std::abort();
  }
  return 0;
}
