// What a Jinja template can call: filters, tests, the methods of str, dict and list, attribute and item
// lookup with jinja2's rules, and the globals of Hugging Face's environment (raise_exception, strftime_now,
// namespace, range). The sandbox is immutable, as Hugging Face's: list and dict methods that modify raise.
#pragma once

#include <string_view>

#include "jinja/value.hpp"

namespace tandem::jinja {

// The names the parser accepts; a template using any other is refused when it is loaded.
bool IsKnownFilter(std::string_view name);
bool IsKnownTest(std::string_view name);
bool IsKnownMethod(std::string_view name);

Value ApplyFilter(std::string_view name, const Value& input, const CallArgs& args);
bool ApplyTest(std::string_view name, const Value& input, const CallArgs& args);

// `object.name`: jinja2 tries the Python attribute first (a method, bound to `object`), then the item.
// Undefined when neither exists; a RenderError when `object` is undefined.
Value GetAttribute(const Value& object, std::string_view name);
// `object[key]`: the item first, then for a string key the attribute; negative sequence indices count
// from the end. Undefined when missing.
Value GetItem(const Value& object, const Value& key);
// `object[start:stop:step]` of a string or sequence (nulls: omitted), with Python's slice rules.
Value GetSlice(const Value& object, const Value& start, const Value& stop, const Value& step);

// A global function or constant by name; undefined when there is none.
Value LookupGlobal(std::string_view name);

// Calls `callee` (a function, a bound method, a macro); a RenderError for anything else.
Value CallValue(const Value& callee, const CallArgs& args);

}  // namespace tandem::jinja
