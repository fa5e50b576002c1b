// Attribute and item lookup, methods, globals and calls (filters and tests: filters.cpp).
#include "jinja/builtins.hpp"

#include <algorithm>
#include <array>
#include <ctime>
#include <map>

#include "jinja/py_string.hpp"

namespace tandem::jinja {
namespace {

using Method = Value (*)(const Value& self, const CallArgs& args);

[[noreturn]] void TypeError(const std::string& message) {
  throw RenderError("TypeError: " + message);
}

Undefined NoAttribute(const Value& object, std::string_view name) {
  return Undefined{"'" + object.TypeName() + " object' has no attribute '" + std::string(name) + "'"};
}

std::optional<std::string> OptionalString(const CallArgs& args, size_t position, std::string_view name) {
  const Value* value = args.Get(position, name);
  if (value == nullptr || value->is_none()) return std::nullopt;
  if (!value->is_string())
    TypeError(std::string(name) + " must be None or a string, not " + value->TypeName());
  return value->string();
}

const std::string& StringArg(const CallArgs& args, size_t position, std::string_view name) {
  const Value* value = args.Get(position, name);
  if (value == nullptr) TypeError("missing argument '" + std::string(name) + "'");
  if (!value->is_string())
    TypeError("argument '" + std::string(name) + "' must be str, not " + value->TypeName());
  return value->string();
}

int64_t IntArg(const CallArgs& args, size_t position, std::string_view name, int64_t fallback) {
  const Value* value = args.Get(position, name);
  if (value == nullptr) return fallback;
  if (!value->is_integer_like()) TypeError("argument '" + std::string(name) + "' must be an integer");
  return value->integer();
}

// startswith/endswith take a string or a tuple of strings.
Value Affix(const Value& self, const CallArgs& args, bool prefix) {
  const Value* affix = args.Get(0, "prefix");
  if (affix == nullptr) TypeError("startswith/endswith take one argument");
  std::vector<Value> candidates =
      affix->kind() == Value::Kind::kSequence ? affix->sequence().items : std::vector<Value>{*affix};
  const std::string& text = self.string();
  for (const Value& candidate : candidates) {
    if (!candidate.is_string()) TypeError("startswith/endswith need str or a tuple of str");
    if (prefix ? text.starts_with(candidate.string()) : text.ends_with(candidate.string())) return true;
  }
  return false;
}

// str.format with {} / {0} / {name} fields (no format specs or conversions).
Value Format(const Value& self, const CallArgs& args) {
  const std::string& text = self.string();
  std::string out;
  size_t automatic = 0;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if ((c == '{' || c == '}') && i + 1 < text.size() && text[i + 1] == c) {
      out.push_back(c);
      ++i;
      continue;
    }
    if (c == '}') throw RenderError("ValueError: Single '}' encountered in format string");
    if (c != '{') {
      out.push_back(c);
      continue;
    }
    const size_t close = text.find('}', i);
    if (close == std::string::npos) throw RenderError("ValueError: Single '{' encountered in format string");
    const std::string field = text.substr(i + 1, close - i - 1);
    if (field.find_first_of(":!.[") != std::string::npos) {
      throw RenderError("str.format with format specs is not supported by Tandem's Jinja interpreter");
    }
    const Value* value = nullptr;
    if (field.empty()) {
      value = automatic < args.positional.size() ? &args.positional[automatic++] : nullptr;
    } else if (field.find_first_not_of("0123456789") == std::string::npos) {
      const size_t index = std::stoul(field);
      value = index < args.positional.size() ? &args.positional[index] : nullptr;
    } else {
      value = args.Get(SIZE_MAX, field);
    }
    if (value == nullptr) throw RenderError("IndexError: format field '" + field + "' has no argument");
    out += value->Str();
    i = close;
  }
  return out;
}

Value Join(const Value& self, const CallArgs& args) {
  const Value* items = args.Get(0, "iterable");
  if (items == nullptr) TypeError("join takes one argument");
  std::string out;
  bool first = true;
  for (const Value& item : items->Iterate()) {
    if (!item.is_string()) TypeError("sequence item: expected str instance, " + item.TypeName() + " found");
    if (!first) out += self.string();
    out += item.string();
    CheckValueSize(out.size());
    first = false;
  }
  return out;
}

Value Split(const Value& self, const CallArgs& args) {
  const std::optional<std::string> separator = OptionalString(args, 0, "sep");
  if (separator && separator->empty()) throw RenderError("ValueError: empty separator");
  std::vector<Value> parts;
  for (std::string& part : PySplit(self.string(), separator, IntArg(args, 1, "maxsplit", -1))) {
    parts.emplace_back(std::move(part));
  }
  return Value::List(std::move(parts));
}

const std::map<std::string_view, Method>& StringMethods() {
  static const std::map<std::string_view, Method> methods = {
      {"strip",
       [](const Value& s, const CallArgs& a) -> Value {
         return PyStrip(s.string(), OptionalString(a, 0, "chars"), true, true);
       }},
      {"lstrip",
       [](const Value& s, const CallArgs& a) -> Value {
         return PyStrip(s.string(), OptionalString(a, 0, "chars"), true, false);
       }},
      {"rstrip",
       [](const Value& s, const CallArgs& a) -> Value {
         return PyStrip(s.string(), OptionalString(a, 0, "chars"), false, true);
       }},
      {"startswith", [](const Value& s, const CallArgs& a) { return Affix(s, a, true); }},
      {"endswith", [](const Value& s, const CallArgs& a) { return Affix(s, a, false); }},
      {"split", &Split},
      {"splitlines",
       [](const Value& s, const CallArgs&) -> Value {
         std::vector<Value> lines;
         for (std::string& line : PySplitLines(s.string())) lines.emplace_back(std::move(line));
         return Value::List(std::move(lines));
       }},
      {"upper", [](const Value& s, const CallArgs&) -> Value { return PyUpper(s.string()); }},
      {"lower", [](const Value& s, const CallArgs&) -> Value { return PyLower(s.string()); }},
      {"title", [](const Value& s, const CallArgs&) -> Value { return PyTitle(s.string()); }},
      {"capitalize", [](const Value& s, const CallArgs&) -> Value { return PyCapitalize(s.string()); }},
      {"replace",
       [](const Value& s, const CallArgs& a) -> Value {
         return PyReplace(s.string(), StringArg(a, 0, "old"), StringArg(a, 1, "new"),
                          IntArg(a, 2, "count", -1));
       }},
      {"format", &Format},
      {"join", &Join},
      {"find",
       [](const Value& s, const CallArgs& a) -> Value {
         const size_t found = s.string().find(StringArg(a, 0, "sub"));
         if (found == std::string::npos) return -1;
         return static_cast<int64_t>(CodePoints(std::string_view(s.string()).substr(0, found)).size());
       }},
      {"count",
       [](const Value& s, const CallArgs& a) -> Value {
         const std::string& needle = StringArg(a, 0, "sub");
         if (needle.empty()) return s.Length() + 1;
         int64_t count = 0;
         for (size_t at = s.string().find(needle); at != std::string::npos;
              at = s.string().find(needle, at + needle.size())) {
           ++count;
         }
         return count;
       }},
  };
  return methods;
}

Value DictGet(const Value& self, const CallArgs& args) {
  const Value* key = args.Get(0, "key");
  if (key == nullptr) TypeError("get expected at least 1 argument");
  if (const Value* found = self.dict().Find(*key)) return *found;
  const Value* fallback = args.Get(1, "default");
  return fallback != nullptr ? *fallback : Value(None{});
}

const std::map<std::string_view, Method>& DictMethods() {
  static const std::map<std::string_view, Method> methods = {
      {"items",
       [](const Value& d, const CallArgs&) -> Value {
         std::vector<Value> pairs;
         for (const auto& [key, value] : d.dict().items) pairs.push_back(Value::List({key, value}, true));
         return Value::List(std::move(pairs));
       }},
      {"keys", [](const Value& d, const CallArgs&) -> Value { return Value::List(d.Iterate()); }},
      {"values",
       [](const Value& d, const CallArgs&) -> Value {
         std::vector<Value> values;
         for (const auto& item : d.dict().items) values.push_back(item.second);
         return Value::List(std::move(values));
       }},
      {"get", &DictGet},
  };
  return methods;
}

const std::map<std::string_view, Method>& ListMethods() {
  static const std::map<std::string_view, Method> methods = {
      {"index",
       [](const Value& l, const CallArgs& a) -> Value {
         const Value* item = a.Get(0, "value");
         for (size_t i = 0; item != nullptr && i < l.sequence().items.size(); ++i) {
           if (Equal(l.sequence().items[i], *item)) return static_cast<int64_t>(i);
         }
         throw RenderError("ValueError: item is not in list");
       }},
      {"count",
       [](const Value& l, const CallArgs& a) -> Value {
         const Value* item = a.Get(0, "value");
         return static_cast<int64_t>(
             std::count_if(l.sequence().items.begin(), l.sequence().items.end(),
                           [&](const Value& v) { return item != nullptr && Equal(v, *item); }));
       }},
  };
  return methods;
}

// What the immutable sandbox refuses to call.
constexpr std::array<std::string_view, 12> kMutatingMethods = {"append", "extend",     "insert",  "pop",
                                                               "remove", "reverse",    "sort",    "clear",
                                                               "update", "setdefault", "popitem", "add"};

Value Bind(const Value& self, std::string_view name, Method method) {
  return Value::Function(std::string(name),
                         [self, method](const CallArgs& args) { return method(self, args); });
}

Value NamespaceGlobal(const CallArgs& args) {
  auto space = std::make_shared<Namespace>();
  for (const Value& positional : args.positional) {
    if (positional.kind() != Value::Kind::kDict)
      TypeError("namespace() takes mappings and keyword arguments");
    for (const auto& [key, value] : positional.dict().items) space->attributes.Set(key, value);
  }
  for (const auto& [key, value] : args.keywords) space->attributes.Set(key, value);
  return Value(space);
}

Value RangeGlobal(const CallArgs& args) {
  constexpr int64_t kMaxRange = 100000;  // jinja2's sandbox MAX_RANGE
  if (args.positional.empty() || args.positional.size() > 3) TypeError("range expected 1 to 3 arguments");
  for (const Value& arg : args.positional) {
    if (!arg.is_integer_like())
      TypeError("'" + arg.TypeName() + "' object cannot be interpreted as an integer");
  }
  const bool one = args.positional.size() == 1;
  const int64_t start = one ? 0 : args.positional[0].integer();
  const int64_t stop = one ? args.positional[0].integer() : args.positional[1].integer();
  const int64_t step = args.positional.size() == 3 ? args.positional[2].integer() : 1;
  if (step == 0) throw RenderError("ValueError: range() arg 3 must not be zero");
  std::vector<Value> items;
  for (int64_t i = start; step > 0 ? i < stop : i > stop; i += step) {
    if (static_cast<int64_t>(items.size()) >= kMaxRange) {
      throw RenderError(
          "OverflowError: Range too big. The sandbox blocks ranges larger than MAX_RANGE (100000).");
    }
    items.emplace_back(i);
  }
  return Value::List(std::move(items));
}

Value StrftimeNow(const CallArgs& args) {
  const Value* format = args.Get(0, "format");
  if (format == nullptr || !format->is_string()) TypeError("strftime_now takes a format string");
  const std::time_t now = std::time(nullptr);
  std::tm local{};
  localtime_r(&now, &local);
  char buffer[256];
  const size_t length = std::strftime(buffer, sizeof(buffer), format->string().c_str(), &local);
  return std::string(buffer, length);
}

const std::map<std::string_view, Value>& Globals() {
  static const std::map<std::string_view, Value> globals = {
      {"raise_exception", Value::Function("raise_exception",
                                          [](const CallArgs& args) -> Value {
                                            const Value* message = args.Get(0, "message");
                                            throw RenderError(message != nullptr ? message->Str() : "");
                                          })},
      {"strftime_now", Value::Function("strftime_now", &StrftimeNow)},
      {"namespace", Value::Function("namespace", &NamespaceGlobal)},
      {"range", Value::Function("range", &RangeGlobal)},
      {"dict", Value::Function("dict",
                               [](const CallArgs& args) -> Value {
                                 Dict dict;
                                 for (const auto& [key, value] : args.keywords) dict.Set(key, value);
                                 return Value::MakeDict(std::move(dict));
                               })},
  };
  return globals;
}

int64_t ClampSliceIndex(const Value& index, int64_t length, int64_t step, bool is_start) {
  if (index.is_none()) {
    if (step > 0) return is_start ? 0 : length;
    return is_start ? length - 1 : -1;
  }
  if (!index.is_integer_like()) TypeError("slice indices must be integers or None");
  int64_t i = index.integer();
  if (i < 0) {
    i += length;
    if (i < 0) i = step < 0 ? -1 : 0;
  } else if (i >= length) {
    i = step < 0 ? length - 1 : length;
  }
  return i;
}

}  // namespace

bool IsKnownMethod(std::string_view name) {
  return StringMethods().contains(name) || DictMethods().contains(name) || ListMethods().contains(name) ||
         std::find(kMutatingMethods.begin(), kMutatingMethods.end(), name) != kMutatingMethods.end() ||
         name == "cycle";
}

Value GetAttribute(const Value& object, std::string_view name) {
  const auto lookup = [&](const std::map<std::string_view, Method>& methods) -> std::optional<Value> {
    if (auto found = methods.find(name); found != methods.end()) return Bind(object, name, found->second);
    if (std::find(kMutatingMethods.begin(), kMutatingMethods.end(), name) != kMutatingMethods.end()) {
      return Value(Undefined{"SecurityError: access to attribute '" + std::string(name) + "' of '" +
                             object.TypeName() + "' object is unsafe."});
    }
    return std::nullopt;
  };
  switch (object.kind()) {
    case Value::Kind::kUndefined:
      FailUndefined(object);
    case Value::Kind::kString:
      if (auto found = StringMethods().find(name); found != StringMethods().end()) {
        return Bind(object, name, found->second);
      }
      return NoAttribute(object, name);
    case Value::Kind::kDict: {
      if (auto method = lookup(DictMethods())) return *method;
      if (const Value* found = object.dict().Find(name)) return *found;
      return NoAttribute(object, name);
    }
    case Value::Kind::kSequence:
      if (auto method = lookup(ListMethods())) return *method;
      return NoAttribute(object, name);
    case Value::Kind::kNamespace:
      if (const Value* found = object.name_space().attributes.Find(name)) return *found;
      return NoAttribute(object, name);
    default:
      return NoAttribute(object, name);
  }
}

Value GetItem(const Value& object, const Value& key) {
  switch (object.kind()) {
    case Value::Kind::kUndefined:
      FailUndefined(object);
    case Value::Kind::kSequence:
    case Value::Kind::kString:
      if (key.is_integer_like()) {
        const bool is_string = object.is_string();
        const std::vector<std::string_view> points =
            is_string ? CodePoints(object.string()) : std::vector<std::string_view>{};
        const int64_t length = is_string ? static_cast<int64_t>(points.size()) : object.Length();
        const int64_t index = key.integer() < 0 ? key.integer() + length : key.integer();
        if (index < 0 || index >= length)
          return Undefined{object.TypeName() + " object has no element " + key.Str()};
        if (is_string) return std::string(points[static_cast<size_t>(index)]);
        return object.sequence().items[static_cast<size_t>(index)];
      }
      break;
    case Value::Kind::kDict:
      if (const Value* found = object.dict().Find(key)) return *found;
      break;
    default:
      break;
  }
  if (key.is_string()) return GetAttribute(object, key.string());
  return Undefined{"'" + object.TypeName() + " object' has no attribute " + key.Repr()};
}

Value GetSlice(const Value& object, const Value& start, const Value& stop, const Value& step) {
  if (object.is_undefined()) FailUndefined(object);
  if (!step.is_none() && !step.is_integer_like()) TypeError("slice indices must be integers or None");
  const int64_t stride = step.is_none() ? 1 : step.integer();
  if (stride == 0) throw RenderError("ValueError: slice step cannot be zero");
  std::vector<std::string_view> points;
  std::vector<Value> items;
  if (object.is_string()) {
    points = CodePoints(object.string());
  } else if (object.kind() == Value::Kind::kSequence) {
    items = object.sequence().items;
  } else {
    TypeError("'" + object.TypeName() + "' object is not subscriptable");
  }
  const int64_t length =
      object.is_string() ? static_cast<int64_t>(points.size()) : static_cast<int64_t>(items.size());
  const int64_t first = ClampSliceIndex(start, length, stride, true);
  const int64_t last = ClampSliceIndex(stop, length, stride, false);
  std::string text;
  std::vector<Value> picked;
  for (int64_t i = first; stride > 0 ? i < last : i > last; i += stride) {
    if (object.is_string()) {
      text.append(points[static_cast<size_t>(i)]);
    } else {
      picked.push_back(items[static_cast<size_t>(i)]);
    }
  }
  if (object.is_string()) return text;
  return Value::List(std::move(picked), object.sequence().tuple);
}

Value LookupGlobal(std::string_view name) {
  const auto found = Globals().find(name);
  return found == Globals().end() ? Value(Undefined{"'" + std::string(name) + "' is undefined"})
                                  : found->second;
}

Value CallValue(const Value& callee, const CallArgs& args) {
  if (callee.kind() == Value::Kind::kCallable) return callee.callable().call(args);
  if (callee.is_undefined()) FailUndefined(callee);
  TypeError("'" + callee.TypeName() + "' object is not callable");
}

}  // namespace tandem::jinja
