#include "jinja/value.hpp"

#include <unictype.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>

#include "jinja/py_string.hpp"
#include "unicode.hpp"

namespace tandem::jinja {
namespace {

[[noreturn]] void TypeError(const std::string& message) {
  throw RenderError("TypeError: " + message);
}

std::string Quoted(const Value& a) {
  // Appended rather than "'" + name + "'": GCC 12 warns (-Wrestrict, a false positive) on the latter.
  std::string quoted = "'";
  quoted.append(a.TypeName()).append("'");
  return quoted;
}

// Python's str.isprintable() for one code point: not a control, format, surrogate, private-use,
// unassigned or separator character (the ASCII space excepted).
bool IsPrintable(uint32_t cp) {
  if (cp == ' ') return true;
  return !uc_is_general_category(
      cp, uc_general_category_or(uc_general_category_or(uc_general_category_or(UC_CONTROL, UC_FORMAT),
                                                        uc_general_category_or(UC_SURROGATE, UC_PRIVATE_USE)),
                                 uc_general_category_or(UC_UNASSIGNED, UC_SEPARATOR)));
}

std::string StringRepr(std::string_view text) {
  const bool has_single = text.find('\'') != std::string_view::npos;
  const bool has_double = text.find('"') != std::string_view::npos;
  const char quote = has_single && !has_double ? '"' : '\'';
  std::string out(1, quote);
  for (size_t i = 0; i < text.size();) {
    const size_t length = unicode::ValidSequenceLength(text, i);
    if (length == 0) {  // not UTF-8: Python would not hold it; kept as it is
      out.push_back(text[i++]);
      continue;
    }
    const uint32_t cp = unicode::DecodeSequence(text, i, length);
    char escape[16] = {};
    if (cp == static_cast<uint32_t>(quote) || cp == '\\') {
      out.push_back('\\');
      out.push_back(static_cast<char>(cp));
    } else if (cp == '\n') {
      out += "\\n";
    } else if (cp == '\r') {
      out += "\\r";
    } else if (cp == '\t') {
      out += "\\t";
    } else if (IsPrintable(cp)) {
      out.append(text.substr(i, length));
    } else {
      if (cp < 0x100) {
        std::snprintf(escape, sizeof(escape), "\\x%02x", cp);
      } else if (cp < 0x10000) {
        std::snprintf(escape, sizeof(escape), "\\u%04x", cp);
      } else {
        std::snprintf(escape, sizeof(escape), "\\U%08x", cp);
      }
      out += escape;
    }
    i += length;
  }
  out.push_back(quote);
  return out;
}

std::string JsonString(std::string_view text) {
  std::string out = "\"";
  for (const char c : text) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\b':
        out += "\\b";
        break;
      case '\f':
        out += "\\f";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char escape[8];
          std::snprintf(escape, sizeof(escape), "\\u%04x", static_cast<unsigned>(c));
          out += escape;
        } else {
          out.push_back(c);
        }
    }
  }
  out.push_back('"');
  return out;
}

void AppendJson(const Value& value, int indent, int level, std::string& out) {
  const auto newline = [&](int depth) {
    if (indent < 0) return;
    out.push_back('\n');
    out.append(static_cast<size_t>(indent) * static_cast<size_t>(depth), ' ');
  };
  const char* item_separator = indent < 0 ? ", " : ",";
  switch (value.kind()) {
    case Value::Kind::kNone:
      out += "null";
      return;
    case Value::Kind::kBool:
      out += value.boolean() ? "true" : "false";
      return;
    case Value::Kind::kInt:
      out += std::to_string(value.integer());
      return;
    case Value::Kind::kFloat: {
      const double number = value.number();
      out += std::isnan(number)   ? "NaN"
             : std::isinf(number) ? (number > 0 ? "Infinity" : "-Infinity")
                                  : FloatRepr(number);
      return;
    }
    case Value::Kind::kString:
      out += JsonString(value.string());
      return;
    case Value::Kind::kSequence: {
      const auto& items = value.sequence().items;
      if (items.empty()) {
        out += "[]";
        return;
      }
      out.push_back('[');
      for (size_t i = 0; i < items.size(); ++i) {
        if (i > 0) out += item_separator;
        newline(level + 1);
        AppendJson(items[i], indent, level + 1, out);
      }
      newline(level);
      out.push_back(']');
      return;
    }
    case Value::Kind::kDict: {
      const auto& items = value.dict().items;
      if (items.empty()) {
        out += "{}";
        return;
      }
      out.push_back('{');
      for (size_t i = 0; i < items.size(); ++i) {
        if (i > 0) out += item_separator;
        newline(level + 1);
        const Value& key = items[i].first;
        if (key.is_string()) {
          out += JsonString(key.string());
        } else if (key.is_number() || key.is_none()) {
          std::string text;
          AppendJson(key, -1, 0, text);
          out += JsonString(text);
        } else {
          TypeError("keys must be str, int, float, bool or None, not " + key.TypeName());
        }
        out += ": ";
        AppendJson(items[i].second, indent, level + 1, out);
      }
      newline(level);
      out.push_back('}');
      return;
    }
    default:
      TypeError("Object of type " + value.TypeName() + " is not JSON serializable");
  }
}

// x op y on int64, or an error where Python's unbounded ints would go past the 64-bit range.
template <typename Operation>
int64_t CheckedInt(int64_t x, int64_t y, Operation operation) {
  int64_t result = 0;
  if (operation(x, y, &result)) throw RenderError("OverflowError: integer result out of the 64-bit range");
  return result;
}

bool MultiplyOverflows(int64_t x, int64_t y, int64_t* result) {
  return __builtin_mul_overflow(x, y, result);
}

int64_t FloorDiv(int64_t a, int64_t b) {
  int64_t quotient = a / b;
  if ((a % b != 0) && ((a < 0) != (b < 0))) --quotient;
  return quotient;
}

Value Power(const Value& a, const Value& b) {
  if (a.is_integer_like() && b.is_integer_like() && b.integer() >= 0) {
    int64_t result = 1, base = a.integer();
    for (int64_t exponent = b.integer(); exponent > 0; --exponent) {
      result = CheckedInt(result, base, &MultiplyOverflows);
    }
    return result;
  }
  if (a.number() == 0 && b.number() < 0)
    throw RenderError("ZeroDivisionError: 0.0 cannot be raised to a negative power");
  return std::pow(a.number(), b.number());
}

Value Repeat(const Value& items, int64_t times) {
  const size_t unit =
      items.is_string() ? items.string().size() : items.sequence().items.size() * sizeof(Value);
  if (times > 0 && unit > 0 && static_cast<uint64_t>(times) > kMaxValueBytes / unit)
    CheckValueSize(kMaxValueBytes + 1);
  if (items.is_string()) {
    std::string out;
    for (int64_t i = 0; i < times; ++i) out += items.string();
    return out;
  }
  std::vector<Value> out;
  for (int64_t i = 0; i < times; ++i) {
    out.insert(out.end(), items.sequence().items.begin(), items.sequence().items.end());
  }
  return Value::List(std::move(out), items.sequence().tuple);
}

// Python's `format % values` for the conversions %s %r %d %i %% (no flags or widths).
Value PercentFormat(const std::string& format, const Value& values) {
  const std::vector<Value> items = values.kind() == Value::Kind::kSequence && values.sequence().tuple
                                       ? values.sequence().items
                                       : std::vector<Value>{values};
  std::string out;
  size_t used = 0;
  for (size_t i = 0; i < format.size(); ++i) {
    if (format[i] != '%') {
      out.push_back(format[i]);
      continue;
    }
    const char conversion = i + 1 < format.size() ? format[++i] : '\0';
    if (conversion == '%') {
      out.push_back('%');
      continue;
    }
    if (conversion != 's' && conversion != 'r' && conversion != 'd' && conversion != 'i') {
      throw RenderError("str % values: only %s, %r, %d and %i are supported by Tandem's Jinja interpreter");
    }
    if (used == items.size()) TypeError("not enough arguments for format string");
    const Value& item = items[used++];
    if (conversion == 's') {
      out += item.Str();
    } else if (conversion == 'r') {
      out += item.Repr();
    } else {
      if (!item.is_number()) TypeError("%d format: a real number is required, not " + item.TypeName());
      out += std::to_string(item.is_integer_like() ? item.integer()
                                                   : static_cast<int64_t>(std::trunc(item.number())));
    }
  }
  if (used < items.size()) TypeError("not all arguments converted during string formatting");
  return out;
}

Value NumberArithmetic(std::string_view op, const Value& a, const Value& b) {
  const bool integers = a.is_integer_like() && b.is_integer_like();
  if (op == "**") return Power(a, b);
  if (op == "/") {
    if (b.number() == 0) throw RenderError("ZeroDivisionError: division by zero");
    return a.number() / b.number();
  }
  if ((op == "//" || op == "%") && b.number() == 0) {
    throw RenderError("ZeroDivisionError: integer division or modulo by zero");
  }
  if (integers) {
    const int64_t x = a.integer(), y = b.integer();
    if (op == "+") {
      return CheckedInt(x, y,
                        [](int64_t a, int64_t b, int64_t* r) { return __builtin_add_overflow(a, b, r); });
    }
    if (op == "-") {
      return CheckedInt(x, y,
                        [](int64_t a, int64_t b, int64_t* r) { return __builtin_sub_overflow(a, b, r); });
    }
    if (op == "*") return CheckedInt(x, y, &MultiplyOverflows);
    if (op == "//") return FloorDiv(x, y);
    return x - FloorDiv(x, y) * y;  // %: the sign of the divisor, as Python
  }
  const double x = a.number(), y = b.number();
  if (op == "+") return x + y;
  if (op == "-") return x - y;
  if (op == "*") return x * y;
  if (op == "//") return std::floor(x / y);
  double remainder = std::fmod(x, y);
  if (remainder != 0 && ((remainder < 0) != (y < 0))) remainder += y;
  return remainder;
}

}  // namespace

const Value* Dict::Find(const Value& key) const {
  for (const auto& [k, v] : items) {
    if (Equal(k, key)) return &v;
  }
  return nullptr;
}

const Value* Dict::Find(std::string_view key) const {
  for (const auto& [k, v] : items) {
    if (k.is_string() && k.string() == key) return &v;
  }
  return nullptr;
}

void Dict::Set(Value key, Value value) {
  for (auto& [k, v] : items) {
    if (Equal(k, key)) {
      v = std::move(value);
      return;
    }
  }
  items.emplace_back(std::move(key), std::move(value));
}

const Value* CallArgs::Get(size_t position, std::string_view name) const {
  if (position < positional.size()) return &positional[position];
  for (const auto& [key, value] : keywords) {
    if (key == name) return &value;
  }
  return nullptr;
}

Value Value::List(std::vector<Value> items, bool tuple) {
  return Value(std::make_shared<const Sequence>(Sequence{std::move(items), tuple}));
}

Value Value::MakeDict(Dict dict) {
  return Value(std::make_shared<const Dict>(std::move(dict)));
}

Value Value::Function(std::string name, std::function<Value(const CallArgs&)> call) {
  return Value(std::make_shared<const Callable>(Callable{std::move(name), std::move(call)}));
}

int64_t Value::integer() const {
  return kind() == Kind::kBool ? int64_t{boolean()} : std::get<int64_t>(data_);
}

double Value::number() const {
  return kind() == Kind::kFloat ? std::get<double>(data_) : static_cast<double>(integer());
}

std::string Value::TypeName() const {
  switch (kind()) {
    case Kind::kUndefined:
      return "Undefined";
    case Kind::kNone:
      return "NoneType";
    case Kind::kBool:
      return "bool";
    case Kind::kInt:
      return "int";
    case Kind::kFloat:
      return "float";
    case Kind::kString:
      return "str";
    case Kind::kSequence:
      return sequence().tuple ? "tuple" : "list";
    case Kind::kDict:
      return "dict";
    case Kind::kNamespace:
      return "Namespace";
    case Kind::kCallable:
      return "function";
  }
  return "object";
}

bool Value::Truthy() const {
  switch (kind()) {
    case Kind::kUndefined:
    case Kind::kNone:
      return false;
    case Kind::kBool:
      return boolean();
    case Kind::kInt:
      return integer() != 0;
    case Kind::kFloat:
      return number() != 0;
    case Kind::kString:
      return !string().empty();
    case Kind::kSequence:
      return !sequence().items.empty();
    case Kind::kDict:
      return !dict().items.empty();
    default:
      return true;
  }
}

std::string Value::Str() const {
  switch (kind()) {
    case Kind::kUndefined:
      return "";
    case Kind::kString:
      return string();
    case Kind::kNamespace: {
      // A namespace inside itself prints as Python prints a dict inside itself: {...}.
      thread_local std::vector<const Namespace*> printing;
      const Namespace* self = &name_space();
      if (std::find(printing.begin(), printing.end(), self) != printing.end()) return "<Namespace {...}>";
      printing.push_back(self);
      struct Pop {
        std::vector<const Namespace*>& stack;
        ~Pop() { stack.pop_back(); }
      } pop{printing};
      return "<Namespace " + Value::MakeDict(name_space().attributes).Repr() + ">";
    }
    default:
      return Repr();
  }
}

std::string Value::Repr() const {
  switch (kind()) {
    case Kind::kUndefined:
      return "";
    case Kind::kNone:
      return "None";
    case Kind::kBool:
      return boolean() ? "True" : "False";
    case Kind::kInt:
      return std::to_string(integer());
    case Kind::kFloat:
      return FloatRepr(number());
    case Kind::kString:
      return StringRepr(string());
    case Kind::kSequence: {
      const Sequence& seq = sequence();
      std::string out = seq.tuple ? "(" : "[";
      for (size_t i = 0; i < seq.items.size(); ++i) {
        if (i > 0) out += ", ";
        out += seq.items[i].Repr();
      }
      if (seq.tuple && seq.items.size() == 1) out += ",";
      return out + (seq.tuple ? ")" : "]");
    }
    case Kind::kDict: {
      std::string out = "{";
      for (size_t i = 0; i < dict().items.size(); ++i) {
        if (i > 0) out += ", ";
        out += dict().items[i].first.Repr() + ": " + dict().items[i].second.Repr();
      }
      return out + "}";
    }
    case Kind::kNamespace:
      return Str();
    case Kind::kCallable:
      return "<function " + callable().name + ">";
  }
  return "";
}

namespace {
thread_local bool work_counted = false;
thread_local uint64_t work_done = 0;
}  // namespace

void ChargeWork(uint64_t units) {
  if (!work_counted) return;
  work_done += units;
  if (work_done > kMaxWorkUnits) {
    throw RenderError(
        "the template does too much work (more than two million elements walked or 128 MB of strings made)");
  }
}

RenderWorkScope::RenderWorkScope() {
  work_counted = true;
  work_done = 0;
}

RenderWorkScope::~RenderWorkScope() {
  work_counted = false;
}

std::vector<Value> Value::Iterate() const {
  switch (kind()) {
    case Kind::kUndefined:
      return {};
    case Kind::kSequence:
      ChargeWork(sequence().items.size());
      return sequence().items;
    case Kind::kDict: {
      ChargeWork(dict().items.size());
      std::vector<Value> keys;
      for (const auto& item : dict().items) keys.push_back(item.first);
      return keys;
    }
    case Kind::kString: {
      ChargeWork(string().size());
      std::vector<Value> characters;
      for (std::string_view point : CodePoints(string())) characters.emplace_back(std::string(point));
      return characters;
    }
    default:
      TypeError(Quoted(*this) + " object is not iterable");
  }
}

int64_t Value::Length() const {
  switch (kind()) {
    case Kind::kUndefined:
      return 0;
    case Kind::kString:
      return static_cast<int64_t>(CodePoints(string()).size());
    case Kind::kSequence:
      return static_cast<int64_t>(sequence().items.size());
    case Kind::kDict:
      return static_cast<int64_t>(dict().items.size());
    default:
      TypeError("object of type " + Quoted(*this) + " has no len()");
  }
}

bool Equal(const Value& a, const Value& b) {
  if (a.is_number() && b.is_number()) return a.number() == b.number();
  if (a.kind() != b.kind()) return false;
  switch (a.kind()) {
    case Value::Kind::kUndefined:
    case Value::Kind::kNone:
      return true;
    case Value::Kind::kString:
      return a.string() == b.string();
    case Value::Kind::kSequence: {
      const Sequence &x = a.sequence(), &y = b.sequence();
      if (x.tuple != y.tuple || x.items.size() != y.items.size()) return false;
      for (size_t i = 0; i < x.items.size(); ++i) {
        if (!Equal(x.items[i], y.items[i])) return false;
      }
      return true;
    }
    case Value::Kind::kDict: {
      if (a.dict().items.size() != b.dict().items.size()) return false;
      for (const auto& [key, value] : a.dict().items) {
        const Value* other = b.dict().Find(key);
        if (other == nullptr || !Equal(value, *other)) return false;
      }
      return true;
    }
    case Value::Kind::kNamespace:
      return &a.name_space() == &b.name_space();
    case Value::Kind::kCallable:
      return &a.callable() == &b.callable();
    default:
      return false;
  }
}

bool Less(const Value& a, const Value& b) {
  if (a.is_undefined()) FailUndefined(a);
  if (b.is_undefined()) FailUndefined(b);
  if (a.is_number() && b.is_number()) return a.number() < b.number();
  if (a.is_string() && b.is_string()) return a.string() < b.string();  // UTF-8 keeps code point order
  if (a.kind() == Value::Kind::kSequence && b.kind() == Value::Kind::kSequence &&
      a.sequence().tuple == b.sequence().tuple) {
    const auto &x = a.sequence().items, &y = b.sequence().items;
    for (size_t i = 0; i < x.size() && i < y.size(); ++i) {
      if (!Equal(x[i], y[i])) return Less(x[i], y[i]);
    }
    return x.size() < y.size();
  }
  TypeError("'<' not supported between instances of " + Quoted(a) + " and " + Quoted(b));
}

bool Contains(const Value& container, const Value& item) {
  switch (container.kind()) {
    case Value::Kind::kUndefined:
      return false;
    case Value::Kind::kString:
      if (!item.is_string())
        TypeError("'in <string>' requires string as left operand, not " + item.TypeName());
      ChargeBytes(container.string().size());
      return container.string().find(item.string()) != std::string::npos;
    case Value::Kind::kSequence:
      ChargeWork(container.sequence().items.size());
      for (const Value& element : container.sequence().items) {
        if (Equal(element, item)) return true;
      }
      return false;
    case Value::Kind::kDict:
      return container.dict().Find(item) != nullptr;
    default:
      TypeError("argument of type " + Quoted(container) + " is not iterable");
  }
}

Value Arithmetic(std::string_view op, const Value& a, const Value& b) {
  if (a.is_undefined()) FailUndefined(a);
  if (b.is_undefined()) FailUndefined(b);
  if (a.is_number() && b.is_number()) return NumberArithmetic(op, a, b);
  const bool a_seq = a.kind() == Value::Kind::kSequence, b_seq = b.kind() == Value::Kind::kSequence;
  if (op == "+") {
    if (a.is_string() && b.is_string()) {
      CheckValueSize(a.string().size() + b.string().size());
      return a.string() + b.string();
    }
    if (a_seq && b_seq && a.sequence().tuple == b.sequence().tuple) {
      CheckValueSize((a.sequence().items.size() + b.sequence().items.size()) * sizeof(Value));
      std::vector<Value> items = a.sequence().items;
      items.insert(items.end(), b.sequence().items.begin(), b.sequence().items.end());
      return Value::List(std::move(items), a.sequence().tuple);
    }
    if (a.is_string()) TypeError("can only concatenate str (not \"" + b.TypeName() + "\") to str");
  }
  if (op == "*") {
    if ((a.is_string() || a_seq) && b.is_integer_like()) return Repeat(a, b.integer());
    if ((b.is_string() || b_seq) && a.is_integer_like()) return Repeat(b, a.integer());
  }
  if (op == "%" && a.is_string()) return PercentFormat(a.string(), b);
  TypeError("unsupported operand type(s) for " + std::string(op) + ": " + Quoted(a) + " and " + Quoted(b));
}

std::string FloatRepr(double value) {
  if (std::isnan(value)) return "nan";
  if (std::isinf(value)) return value > 0 ? "inf" : "-inf";
  char buffer[64];
  const auto result = std::to_chars(buffer, buffer + sizeof(buffer), value, std::chars_format::scientific);
  const std::string text(buffer, result.ptr);  // "-1.2345e+02": the shortest digits that round-trip
  const size_t e = text.find('e');
  const bool negative = text[0] == '-';
  std::string digits;
  for (size_t i = negative ? 1 : 0; i < e; ++i) {
    if (text[i] != '.') digits.push_back(text[i]);
  }
  const int exponent = std::stoi(text.substr(e + 1));
  const int point = exponent + 1;  // digits before the decimal point
  std::string out = negative ? "-" : "";
  if (point > -4 && point <= 16) {
    if (point <= 0) {
      out += "0." + std::string(static_cast<size_t>(-point), '0') + digits;
    } else if (static_cast<size_t>(point) >= digits.size()) {
      out += digits + std::string(static_cast<size_t>(point) - digits.size(), '0') + ".0";
    } else {
      out += digits.substr(0, static_cast<size_t>(point)) + "." + digits.substr(static_cast<size_t>(point));
    }
    return out;
  }
  out += digits.substr(0, 1);
  if (digits.size() > 1) out += "." + digits.substr(1);
  char exponent_text[16];
  std::snprintf(exponent_text, sizeof(exponent_text), "e%c%02d", exponent < 0 ? '-' : '+',
                std::abs(exponent));
  return out + exponent_text;
}

std::string ToJson(const Value& value, int indent) {
  std::string out;
  AppendJson(value, indent, 0, out);
  return out;
}

void FailUndefined(const Value& value) {
  throw RenderError(value.is_undefined() && !value.undefined().hint.empty()
                        ? value.undefined().hint
                        : std::string("value is undefined"));
}

}  // namespace tandem::jinja
