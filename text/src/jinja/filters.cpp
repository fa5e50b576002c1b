// Filters and tests, as jinja2 3.1's filters.py and tests.py define them (tojson as Hugging Face overrides
// it: json.dumps(ensure_ascii=False, indent=..., sort_keys=False)).
#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <map>

#include "jinja/builtins.hpp"
#include "jinja/py_string.hpp"

namespace tandem::jinja {
namespace {

using Filter = Value (*)(const Value& input, const CallArgs& args);
using Test = bool (*)(const Value& input, const CallArgs& args);

[[noreturn]] void TypeError(const std::string& message) {
  throw RenderError("TypeError: " + message);
}

Value Arg(const CallArgs& args, size_t position, std::string_view name, const Value& fallback) {
  const Value* value = args.Get(position, name);
  return value != nullptr ? *value : fallback;
}

const Value& RequiredArg(const CallArgs& args, size_t position, std::string_view name) {
  const Value* value = args.Get(position, name);
  if (value == nullptr) TypeError("missing argument '" + std::string(name) + "'");
  return *value;
}

// jinja2's make_attrgetter: "a.b.0" looks up each part as an item (then attribute); digits are indices.
Value Attribute(const Value& item, const std::string& path) {
  Value value = item;
  for (const std::string& part : PySplit(path, std::string("."), -1)) {
    const bool index = !part.empty() && part.find_first_not_of("0123456789") == std::string::npos;
    value = GetItem(value, index ? Value(static_cast<int64_t>(std::stoll(part))) : Value(part));
  }
  return value;
}

std::string HtmlEscape(const std::string& text) {
  std::string out;
  for (const char c : text) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&#34;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        out.push_back(c);
    }
  }
  return out;
}

// jinja2's title filter: each run after - whitespace ( { [ < starts upper case, the rest lower case.
Value Title(const Value& input, const CallArgs&) {
  std::string out, word;
  const auto flush = [&] {
    const std::vector<std::string_view> points = CodePoints(word);
    if (!points.empty()) out += PyUpper(points[0]) + PyLower(std::string_view(word).substr(points[0].size()));
    word.clear();
  };
  bool in_separator = false;
  for (std::string_view point : CodePoints(input.Str())) {
    const bool separator =
        PyIsSpace(point) || point == "-" || point == "(" || point == "{" || point == "[" || point == "<";
    if (separator != in_separator) flush();
    in_separator = separator;
    word.append(point);
  }
  flush();
  return out;
}

Value Indent(const Value& input, const CallArgs& args) {
  const Value width = Arg(args, 0, "width", Value(4));
  const std::string indentation =
      width.is_string() ? width.string()
                        : std::string(static_cast<size_t>(std::max<int64_t>(0, width.integer())), ' ');
  const bool first = Arg(args, 1, "first", Value(false)).Truthy();
  const bool blank = Arg(args, 2, "blank", Value(false)).Truthy();
  const std::vector<std::string> lines = PySplitLines(input.Str() + "\n");
  std::string out;
  for (size_t i = 0; i < lines.size(); ++i) {
    if (i > 0) out += "\n" + (blank || !lines[i].empty() ? indentation : "");
    out += lines[i];
  }
  return first ? indentation + out : out;
}

Value ToInt(const Value& input, const CallArgs& args) {
  Value fallback = Arg(args, 0, "default", Value(0));
  if (input.is_integer_like()) return input.integer();
  if (input.kind() == Value::Kind::kFloat) {
    if (!std::isfinite(input.number())) return fallback;
    return static_cast<int64_t>(std::trunc(input.number()));
  }
  if (!input.is_string()) return fallback;
  std::string text = PyStrip(input.string(), std::nullopt, true, true);
  text.erase(std::remove(text.begin(), text.end(), '_'), text.end());
  const int base = static_cast<int>(Arg(args, 1, "base", Value(10)).integer());
  char* end = nullptr;
  errno = 0;
  const long long value = std::strtoll(text.c_str(), &end, base);
  if (!text.empty() && *end == '\0' && errno == 0) return static_cast<int64_t>(value);
  const double number = std::strtod(text.c_str(), &end);
  if (!text.empty() && *end == '\0' && std::isfinite(number)) return static_cast<int64_t>(std::trunc(number));
  return fallback;
}

Value ToFloat(const Value& input, const CallArgs& args) {
  Value fallback = Arg(args, 0, "default", Value(0.0));
  if (input.is_number()) return input.number();
  if (!input.is_string()) return fallback;
  const std::string text = PyStrip(input.string(), std::nullopt, true, true);
  char* end = nullptr;
  const double number = std::strtod(text.c_str(), &end);
  return !text.empty() && *end == '\0' ? Value(number) : fallback;
}

Value Round(const Value& input, const CallArgs& args) {
  const int64_t precision = Arg(args, 0, "precision", Value(0)).integer();
  const std::string method = Arg(args, 1, "method", Value("common")).Str();
  if (!input.is_number()) TypeError("round needs a number, not " + input.TypeName());
  if (method == "common") {
    if (input.is_integer_like()) return input.integer();
    char buffer[512];
    std::snprintf(buffer, sizeof(buffer), "%.*f", static_cast<int>(std::clamp<int64_t>(precision, 0, 300)),
                  input.number());  // correctly rounded, ties to even on the exact binary value, as Python
    return std::strtod(buffer, nullptr);
  }
  if (method != "ceil" && method != "floor")
    throw RenderError("FilterArgumentError: method must be common, ceil or floor");
  const double scale = std::pow(10.0, static_cast<double>(precision));
  const double scaled = input.number() * scale;
  return (method == "ceil" ? std::ceil(scaled) : std::floor(scaled)) / scale;
}

Value Join(const Value& input, const CallArgs& args) {
  const std::string separator = Arg(args, 0, "d", Value("")).Str();
  const Value* attribute = args.Get(1, "attribute");
  std::string out;
  bool first = true;
  for (const Value& item : input.Iterate()) {
    if (!first) out += separator;
    out += (attribute != nullptr ? Attribute(item, attribute->Str()) : item).Str();
    CheckValueSize(out.size());
    first = false;
  }
  return out;
}

Value Items(const Value& input, const CallArgs&) {
  if (input.is_undefined()) return Value::List({});
  if (input.kind() != Value::Kind::kDict) TypeError("Can only get item pairs from a mapping.");
  std::vector<Value> pairs;
  for (const auto& [key, value] : input.dict().items) pairs.push_back(Value::List({key, value}, true));
  return Value::List(std::move(pairs));
}

// select/reject/selectattr/rejectattr: the items whose (attribute's) test result is `keep`.
Value Select(const Value& input, const CallArgs& args, bool by_attribute, bool keep) {
  const std::string attribute = by_attribute ? RequiredArg(args, 0, "attribute").Str() : "";
  const size_t test_position = by_attribute ? 1 : 0;
  const Value* test = args.Get(test_position, "");
  CallArgs test_args;
  for (size_t i = test_position + 1; i < args.positional.size(); ++i)
    test_args.positional.push_back(args.positional[i]);
  if (test != nullptr && !IsKnownTest(test->Str()))
    throw RenderError("TemplateRuntimeError: No test named " + test->Repr() + ".");
  std::vector<Value> kept;
  for (const Value& item : input.Iterate()) {
    const Value subject = by_attribute ? Attribute(item, attribute) : item;
    const bool passes = test == nullptr ? subject.Truthy() : ApplyTest(test->Str(), subject, test_args);
    if (passes == keep) kept.push_back(item);
  }
  return Value::List(std::move(kept));
}

Value Map(const Value& input, const CallArgs& args) {
  std::vector<Value> mapped;
  if (const Value* attribute = args.Get(SIZE_MAX, "attribute")) {
    const Value* fallback = args.Get(SIZE_MAX, "default");
    for (const Value& item : input.Iterate()) {
      Value value = Attribute(item, attribute->Str());
      mapped.push_back(value.is_undefined() && fallback != nullptr ? *fallback : value);
    }
    return Value::List(std::move(mapped));
  }
  const std::string filter = RequiredArg(args, 0, "filter").Str();
  if (!IsKnownFilter(filter)) throw RenderError("TemplateRuntimeError: No filter named '" + filter + "'.");
  CallArgs filter_args;
  filter_args.positional.assign(args.positional.begin() + 1, args.positional.end());
  filter_args.keywords = args.keywords;
  for (const Value& item : input.Iterate()) mapped.push_back(ApplyFilter(filter, item, filter_args));
  return Value::List(std::move(mapped));
}

Value SortKey(const Value& item, const Value* attribute, bool case_sensitive) {
  Value key = attribute != nullptr ? Attribute(item, attribute->Str()) : item;
  return key.is_string() && !case_sensitive ? Value(PyLower(key.string())) : key;
}

Value Unique(const Value& input, const CallArgs& args) {
  const bool case_sensitive = Arg(args, 0, "case_sensitive", Value(false)).Truthy();
  const Value* attribute = args.Get(1, "attribute");
  std::vector<Value> seen, kept;
  for (const Value& item : input.Iterate()) {
    Value key = SortKey(item, attribute, case_sensitive);
    ChargeWork(seen.size());  // compared with each kept so far: quadratic, so counted as such
    if (std::none_of(seen.begin(), seen.end(), [&](const Value& s) { return Equal(s, key); })) {
      seen.push_back(std::move(key));
      kept.push_back(item);
    }
  }
  return Value::List(std::move(kept));
}

Value Sort(const Value& input, const CallArgs& args) {
  const bool reverse = Arg(args, 0, "reverse", Value(false)).Truthy();
  const bool case_sensitive = Arg(args, 1, "case_sensitive", Value(false)).Truthy();
  const Value* attribute = args.Get(2, "attribute");
  // Each item's key once (a lower-cased copy, an attribute lookup), not once per comparison.
  std::vector<std::pair<Value, Value>> keyed;
  for (Value& item : input.Iterate()) {
    Value key = SortKey(item, attribute, case_sensitive);
    keyed.emplace_back(std::move(key), std::move(item));
  }
  std::stable_sort(keyed.begin(), keyed.end(), [&](const auto& a, const auto& b) {
    return reverse ? Less(b.first, a.first) : Less(a.first, b.first);
  });
  std::vector<Value> items;
  items.reserve(keyed.size());
  for (auto& [key, item] : keyed) items.push_back(std::move(item));
  return Value::List(std::move(items));
}

Value Reverse(const Value& input, const CallArgs&) {
  if (input.is_string()) {
    std::vector<std::string_view> points = CodePoints(input.string());
    std::string out;
    for (auto it = points.rbegin(); it != points.rend(); ++it) out.append(*it);
    return out;
  }
  std::vector<Value> items = input.Iterate();
  std::reverse(items.begin(), items.end());
  return Value::List(std::move(items));
}

Value First(const Value& input, const CallArgs&) {
  std::vector<Value> items = input.Iterate();
  return items.empty() ? Value(Undefined{"No first item, sequence was empty."}) : items.front();
}

Value Last(const Value& input, const CallArgs&) {
  std::vector<Value> items = input.Iterate();
  return items.empty() ? Value(Undefined{"No last item, sequence was empty."}) : items.back();
}

Value Default(const Value& input, const CallArgs& args) {
  const bool boolean = Arg(args, 1, "boolean", Value(false)).Truthy();
  if (input.is_undefined() || (boolean && !input.Truthy())) return Arg(args, 0, "default_value", Value(""));
  return input;
}

Value ToJsonFilter(const Value& input, const CallArgs& args) {
  const Value indent = Arg(args, 0, "indent", Value(None{}));
  if (!indent.is_none() && !indent.is_integer_like()) TypeError("tojson's indent must be an integer");
  return ToJson(input, indent.is_none() ? -1 : static_cast<int>(std::max<int64_t>(0, indent.integer())));
}

Value Abs(const Value& input, const CallArgs&) {
  if (input.is_integer_like()) return input.integer() < 0 ? -input.integer() : input.integer();
  if (input.is_number()) return std::fabs(input.number());
  TypeError("bad operand type for abs(): '" + input.TypeName() + "'");
}

const std::map<std::string_view, Filter>& Filters() {
  static const std::map<std::string_view, Filter> filters = {
      {"abs", &Abs},
      {"capitalize", [](const Value& v, const CallArgs&) -> Value { return PyCapitalize(v.Str()); }},
      {"count", [](const Value& v, const CallArgs&) -> Value { return v.Length(); }},
      {"d", &Default},
      {"default", &Default},
      {"e", [](const Value& v, const CallArgs&) -> Value { return HtmlEscape(v.Str()); }},
      {"escape", [](const Value& v, const CallArgs&) -> Value { return HtmlEscape(v.Str()); }},
      {"first", &First},
      {"float", &ToFloat},
      {"indent", &Indent},
      {"int", &ToInt},
      {"items", &Items},
      {"join", &Join},
      {"last", &Last},
      {"length", [](const Value& v, const CallArgs&) -> Value { return v.Length(); }},
      {"list", [](const Value& v, const CallArgs&) -> Value { return Value::List(v.Iterate()); }},
      {"lower", [](const Value& v, const CallArgs&) -> Value { return PyLower(v.Str()); }},
      {"map", &Map},
      {"reject", [](const Value& v, const CallArgs& a) { return Select(v, a, false, false); }},
      {"rejectattr", [](const Value& v, const CallArgs& a) { return Select(v, a, true, false); }},
      {"replace",
       [](const Value& v, const CallArgs& a) -> Value {
         const Value count = Arg(a, 2, "count", Value(None{}));
         return PyReplace(v.Str(), RequiredArg(a, 0, "old").Str(), RequiredArg(a, 1, "new").Str(),
                          count.is_none() ? -1 : count.integer());
       }},
      {"reverse", &Reverse},
      {"round", &Round},
      {"safe", [](const Value& v, const CallArgs&) -> Value { return v.Str(); }},
      {"select", [](const Value& v, const CallArgs& a) { return Select(v, a, false, true); }},
      {"selectattr", [](const Value& v, const CallArgs& a) { return Select(v, a, true, true); }},
      {"sort", &Sort},
      {"string", [](const Value& v, const CallArgs&) -> Value { return v.Str(); }},
      {"title", &Title},
      {"tojson", &ToJsonFilter},
      {"trim",
       [](const Value& v, const CallArgs& a) -> Value {
         const Value chars = Arg(a, 0, "chars", Value(None{}));
         return PyStrip(v.Str(), chars.is_none() ? std::nullopt : std::optional<std::string>(chars.Str()),
                        true, true);
       }},
      {"unique", &Unique},
      {"upper", [](const Value& v, const CallArgs&) -> Value { return PyUpper(v.Str()); }},
  };
  return filters;
}

bool IsSequenceLike(const Value& v) {
  const Value::Kind kind = v.kind();
  return kind == Value::Kind::kString || kind == Value::Kind::kSequence || kind == Value::Kind::kDict ||
         kind == Value::Kind::kUndefined;
}

bool DivisibleBy(const Value& v, const Value& n) {
  const Value remainder = Arithmetic("%", v, n);
  return remainder.number() == 0;
}

const std::map<std::string_view, Test>& Tests() {
  static const std::map<std::string_view, Test> tests = {
      {"boolean", [](const Value& v, const CallArgs&) { return v.kind() == Value::Kind::kBool; }},
      {"callable", [](const Value& v, const CallArgs&) { return v.kind() == Value::Kind::kCallable; }},
      {"defined", [](const Value& v, const CallArgs&) { return !v.is_undefined(); }},
      {"divisibleby",
       [](const Value& v, const CallArgs& a) { return DivisibleBy(v, RequiredArg(a, 0, "num")); }},
      {"eq", [](const Value& v, const CallArgs& a) { return Equal(v, RequiredArg(a, 0, "other")); }},
      {"equalto", [](const Value& v, const CallArgs& a) { return Equal(v, RequiredArg(a, 0, "other")); }},
      {"==", [](const Value& v, const CallArgs& a) { return Equal(v, RequiredArg(a, 0, "other")); }},
      {"ne", [](const Value& v, const CallArgs& a) { return !Equal(v, RequiredArg(a, 0, "other")); }},
      {"!=", [](const Value& v, const CallArgs& a) { return !Equal(v, RequiredArg(a, 0, "other")); }},
      {"lt", [](const Value& v, const CallArgs& a) { return Less(v, RequiredArg(a, 0, "other")); }},
      {"<", [](const Value& v, const CallArgs& a) { return Less(v, RequiredArg(a, 0, "other")); }},
      {"gt", [](const Value& v, const CallArgs& a) { return Less(RequiredArg(a, 0, "other"), v); }},
      {">", [](const Value& v, const CallArgs& a) { return Less(RequiredArg(a, 0, "other"), v); }},
      {"le", [](const Value& v, const CallArgs& a) { return !Less(RequiredArg(a, 0, "other"), v); }},
      {"<=", [](const Value& v, const CallArgs& a) { return !Less(RequiredArg(a, 0, "other"), v); }},
      {"ge", [](const Value& v, const CallArgs& a) { return !Less(v, RequiredArg(a, 0, "other")); }},
      {">=", [](const Value& v, const CallArgs& a) { return !Less(v, RequiredArg(a, 0, "other")); }},
      {"even", [](const Value& v, const CallArgs&) { return DivisibleBy(v, Value(2)); }},
      {"odd", [](const Value& v, const CallArgs&) { return !DivisibleBy(v, Value(2)); }},
      {"false",
       [](const Value& v, const CallArgs&) { return v.kind() == Value::Kind::kBool && !v.boolean(); }},
      {"true", [](const Value& v, const CallArgs&) { return v.kind() == Value::Kind::kBool && v.boolean(); }},
      {"float", [](const Value& v, const CallArgs&) { return v.kind() == Value::Kind::kFloat; }},
      {"in", [](const Value& v, const CallArgs& a) { return Contains(RequiredArg(a, 0, "seq"), v); }},
      {"integer", [](const Value& v, const CallArgs&) { return v.kind() == Value::Kind::kInt; }},
      {"iterable", [](const Value& v, const CallArgs&) { return IsSequenceLike(v); }},
      {"lower",
       [](const Value& v, const CallArgs&) {
         return v.is_string() && PyLower(v.string()) == v.string() && PyUpper(v.string()) != v.string();
       }},
      {"mapping", [](const Value& v, const CallArgs&) { return v.kind() == Value::Kind::kDict; }},
      {"none", [](const Value& v, const CallArgs&) { return v.is_none(); }},
      {"number", [](const Value& v, const CallArgs&) { return v.is_number(); }},
      {"sameas",
       [](const Value& v, const CallArgs& a) {
         const Value& other = RequiredArg(a, 0, "other");
         // `is` on Tandem's values: singletons compare by value, containers are never the same object
         return (v.is_none() && other.is_none()) ||
                (v.kind() == Value::Kind::kBool && other.kind() == Value::Kind::kBool &&
                 v.boolean() == other.boolean());
       }},
      {"sequence", [](const Value& v, const CallArgs&) { return IsSequenceLike(v); }},
      {"string", [](const Value& v, const CallArgs&) { return v.is_string(); }},
      {"undefined", [](const Value& v, const CallArgs&) { return v.is_undefined(); }},
      {"upper",
       [](const Value& v, const CallArgs&) {
         return v.is_string() && PyUpper(v.string()) == v.string() && PyLower(v.string()) != v.string();
       }},
  };
  return tests;
}

}  // namespace

bool IsKnownFilter(std::string_view name) {
  return Filters().contains(name);
}

bool IsKnownTest(std::string_view name) {
  return Tests().contains(name);
}

Value ApplyFilter(std::string_view name, const Value& input, const CallArgs& args) {
  return Filters().at(name)(input, args);
}

bool ApplyTest(std::string_view name, const Value& input, const CallArgs& args) {
  return Tests().at(name)(input, args);
}

}  // namespace tandem::jinja
