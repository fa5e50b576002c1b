// Renders a parsed Jinja template: statements and expressions with jinja2's scoping (a for loop's body,
// each iteration, a macro and a with block have their own scope; if does not), Python values, and the
// loop variable (index, index0, revindex, revindex0, first, last, length, previtem, nextitem, cycle).
#pragma once

#include <string>

#include "jinja/ast.hpp"
#include "tandem/base/status.hpp"

namespace tandem::jinja {

// The text of `tmpl` with the top-level `variables`; an error (INVALID_ARGUMENT) with the message of the
// exception jinja2 would raise: the template's raise_exception, a type error, an undefined value used.
Result<std::string> Render(const Template& tmpl, const Dict& variables);

}  // namespace tandem::jinja
