// Values of Tandem's Jinja interpreter, with the Python semantics jinja2 gives them: truthiness, equality
// and ordering, str() and repr() as `{{ }}` and `~` print them, arithmetic with Python's int/float rules.
//
// Hand-written: no Debian package renders Hugging Face chat templates (inja's syntax and semantics differ
// from jinja2's), so text/src/jinja/ implements the part of jinja2 3.1 those templates use, and refuses the
// rest when a template is loaded.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace tandem::jinja {

// An error while rendering (a Python exception in jinja2): the template's raise_exception, a TypeError, an
// undefined value used. Thrown inside the interpreter, turned into a Status at its boundary.
class RenderError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Bounds that turn a runaway template into an error instead of exhausting the process: no string or list
// the interpreter builds (nor the rendered text) may exceed kMaxValueBytes; CheckValueSize throws the
// RenderError before the allocation.
inline constexpr size_t kMaxValueBytes = size_t{64} << 20;

// The work a render may do besides its steps: one unit per element a filter, loop or operator walks and
// per 64 bytes of every string value made or searched. The step bound alone let one step do unbounded work
// (the fuzzer found `sort` over a 600,000-character string: seconds, a minute under ASan; `unique` is
// quadratic). Counted per thread, since a render runs on one; outside a RenderWorkScope nothing is charged.
inline constexpr uint64_t kMaxWorkUnits = 2'000'000;
// Throws the RenderError once the render's work passes kMaxWorkUnits.
void ChargeWork(uint64_t units);
inline void ChargeBytes(size_t bytes) {
  ChargeWork(bytes / 64 + 1);
}
// A render's budget, from its start to its end.
class RenderWorkScope {
 public:
  RenderWorkScope();
  ~RenderWorkScope();
  RenderWorkScope(const RenderWorkScope&) = delete;
  RenderWorkScope& operator=(const RenderWorkScope&) = delete;
};

inline void CheckValueSize(size_t bytes) {
  if (bytes > kMaxValueBytes) throw RenderError("a value would exceed 64 MiB");
}

class Value;

// jinja2's default Undefined: prints "", is falsy, iterates empty; most other uses raise with `hint`.
struct Undefined {
  std::string hint;  // "'x' is undefined"
};
struct None {};

struct Sequence {
  std::vector<Value> items;
  bool tuple = false;  // prints as (a, b)
};

// A Python dict: insertion order, keys compared with Python equality.
struct Dict {
  std::vector<std::pair<Value, Value>> items;
  const Value* Find(const Value& key) const;
  const Value* Find(std::string_view key) const;
  void Set(Value key, Value value);
};

// namespace(): the one mutable object (`{% set ns.attr = ... %}`).
struct Namespace {
  Dict attributes;
};

struct CallArgs {
  std::vector<Value> positional;
  std::vector<std::pair<std::string, Value>> keywords;

  // The argument at `position` or named `name`; nullptr when not given.
  const Value* Get(size_t position, std::string_view name) const;
};

// A global function, a bound method, a macro.
struct Callable {
  std::string name;
  std::function<Value(const CallArgs&)> call;
};

class Value {
 public:
  enum class Kind {
    kUndefined,
    kNone,
    kBool,
    kInt,
    kFloat,
    kString,
    kSequence,
    kDict,
    kNamespace,
    kCallable
  };

  Value() : data_(Undefined{}) {}
  Value(Undefined undefined) : data_(std::move(undefined)) {}  // NOLINT(google-explicit-constructor)
  Value(None none) : data_(none) {}                            // NOLINT(google-explicit-constructor)
  Value(bool value) : data_(value) {}                          // NOLINT(google-explicit-constructor)
  Value(int64_t value) : data_(value) {}                       // NOLINT(google-explicit-constructor)
  Value(int value) : data_(int64_t{value}) {}                  // NOLINT(google-explicit-constructor)
  Value(double value) : data_(value) {}                        // NOLINT(google-explicit-constructor)
  Value(std::string value)
      : data_((CheckValueSize(value.size()), ChargeBytes(value.size()), std::move(value))) {}  // NOLINT
  Value(const char* value) : data_(std::string(value)) {}  // NOLINT(google-explicit-constructor)
  Value(std::shared_ptr<const Sequence> value) : data_(std::move(value)) {}  // NOLINT
  Value(std::shared_ptr<const Dict> value) : data_(std::move(value)) {}      // NOLINT
  Value(std::shared_ptr<Namespace> value) : data_(std::move(value)) {}       // NOLINT
  Value(std::shared_ptr<const Callable> value) : data_(std::move(value)) {}  // NOLINT

  static Value List(std::vector<Value> items, bool tuple = false);
  static Value MakeDict(Dict dict);
  static Value Function(std::string name, std::function<Value(const CallArgs&)> call);

  Kind kind() const { return static_cast<Kind>(data_.index()); }
  bool is_undefined() const { return kind() == Kind::kUndefined; }
  bool is_none() const { return kind() == Kind::kNone; }
  bool is_string() const { return kind() == Kind::kString; }
  // int or bool (a Python bool is an int)
  bool is_integer_like() const { return kind() == Kind::kInt || kind() == Kind::kBool; }
  bool is_number() const { return is_integer_like() || kind() == Kind::kFloat; }

  const Undefined& undefined() const { return std::get<Undefined>(data_); }
  bool boolean() const { return std::get<bool>(data_); }
  int64_t integer() const;  // int or bool
  double number() const;    // int, bool or float
  const std::string& string() const { return std::get<std::string>(data_); }
  const Sequence& sequence() const { return *std::get<std::shared_ptr<const Sequence>>(data_); }
  const Dict& dict() const { return *std::get<std::shared_ptr<const Dict>>(data_); }
  Namespace& name_space() const { return *std::get<std::shared_ptr<Namespace>>(data_); }
  const Callable& callable() const { return *std::get<std::shared_ptr<const Callable>>(data_); }

  // Python's type name ("str", "int", "list", "NoneType"), for error messages.
  std::string TypeName() const;

  // Python truthiness (undefined is falsy).
  bool Truthy() const;
  // str(): what `{{ }}`, `~` and the string filter print (undefined prints "").
  std::string Str() const;
  // repr(): how a value prints inside a list or dict.
  std::string Repr() const;
  // The items a for loop visits: a sequence's items, a dict's keys, a string's characters, nothing for
  // undefined; a RenderError for the rest.
  std::vector<Value> Iterate() const;
  // len(): code points of a string, items of a sequence or dict, 0 for undefined.
  int64_t Length() const;

 private:
  std::variant<Undefined, None, bool, int64_t, double, std::string, std::shared_ptr<const Sequence>,
               std::shared_ptr<const Dict>, std::shared_ptr<Namespace>, std::shared_ptr<const Callable>>
      data_;
};

// Python ==.
bool Equal(const Value& a, const Value& b);
// Python <, for numbers, strings and sequences; a RenderError for other types.
bool Less(const Value& a, const Value& b);
// Python `a in b`.
bool Contains(const Value& container, const Value& item);

// Python's arithmetic: "+", "-", "*", "/", "//", "%", "**" (int overflow is an error, never wraps).
Value Arithmetic(std::string_view op, const Value& a, const Value& b);

// repr() of a float, as Python prints it ("1.0", "0.1", "1e+16").
std::string FloatRepr(double value);

// json.dumps(value, ensure_ascii=False, indent=indent, sort_keys=False): Hugging Face's tojson filter.
// indent < 0: none.
std::string ToJson(const Value& value, int indent);

// Raises "'name' is undefined" style errors for uses of undefined that Python rejects.
[[noreturn]] void FailUndefined(const Value& value);

}  // namespace tandem::jinja
