// The Jinja parser: tokens to a syntax tree, as jinja2 3.1's Parser reads them (operator precedence,
// filters, tests, tuples, slices), for the statements Hugging Face chat templates use: if/elif/else, for
// (with a filter and an else), set (also block set and namespace attributes), macro, with, break/continue
// (the loopcontrols extension) and generation (transformers' AssistantTracker). Every other tag, and any
// filter, test or method name the interpreter does not implement, is refused here with its line.
#pragma once

#include <string>

#include "jinja/ast.hpp"
#include "tandem/base/status.hpp"

namespace tandem::jinja {

Result<Template> Parse(const std::string& source);

}  // namespace tandem::jinja
