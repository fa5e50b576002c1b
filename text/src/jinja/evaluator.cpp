#include "jinja/evaluator.hpp"

#include <algorithm>
#include <unordered_map>

#include "jinja/builtins.hpp"

namespace tandem::jinja {
namespace {

// Bounds that turn a runaway template into an error instead of exhausting the process (the size of values
// is value.hpp's): statements and expressions evaluated (a chat template with a long conversation takes a
// few thousand, about 1 µs each; nested loops over range() could take 10^10), and macro calls in progress.
constexpr int64_t kMaxSteps = 1'000'000;
constexpr int kMaxCallDepth = 64;

using Frame = std::unordered_map<std::string, Value>;

class Evaluator {
 public:
  explicit Evaluator(const Dict& variables) {
    frames_.emplace_back();
    for (const auto& [key, value] : variables.items) frames_.back()[key.Str()] = value;
  }
  // A namespace is the one mutable value, so the only way to a cycle of shared pointers (`{% set ns.a =
  // [ns] %}`), which would outlive the render: the namespaces written to are emptied at its end.
  ~Evaluator() {
    for (const Value& written : written_namespaces_) written.name_space().attributes.items.clear();
  }
  Evaluator(const Evaluator&) = delete;
  Evaluator& operator=(const Evaluator&) = delete;

  std::string Run(const Template& tmpl) {
    std::string out;
    Exec(tmpl.body, out);
    return out;
  }

 private:
  enum class Flow { kNormal, kBreak, kContinue };

  Flow Exec(const Body& body, std::string& out) {
    for (const StmtPtr& stmt : body) {
      const Flow flow = ExecStatement(*stmt, out);
      if (out.size() > kMaxValueBytes) throw RenderError("the rendered text exceeds 64 MiB");
      if (flow != Flow::kNormal) return flow;
    }
    return Flow::kNormal;
  }

  void Step() {
    if (++steps_ > kMaxSteps) throw RenderError("the template runs for more than a million steps");
  }

  Flow ExecStatement(const Stmt& stmt, std::string& out) {
    Step();
    switch (stmt.kind) {
      case StmtKind::kText:
        out += stmt.text;
        return Flow::kNormal;
      case StmtKind::kPrint:
        out += Eval(*stmt.expr).Str();
        return Flow::kNormal;
      case StmtKind::kIf:
        for (const auto& [condition, body] : stmt.branches) {
          if (Eval(*condition).Truthy()) return Exec(body, out);
        }
        return Exec(stmt.else_body, out);
      case StmtKind::kFor:
        return ExecFor(stmt, out);
      case StmtKind::kSet:
        Assign(stmt.target, Eval(*stmt.expr));
        return Flow::kNormal;
      case StmtKind::kSetBlock: {
        std::string text;
        Exec(stmt.body, text);
        Value value(std::move(text));
        if (stmt.filter) {
          pending_input_ = std::move(value);
          value = Eval(*stmt.filter);
        }
        Assign(stmt.target, value);
        return Flow::kNormal;
      }
      case StmtKind::kBreak:
        return Flow::kBreak;
      case StmtKind::kContinue:
        return Flow::kContinue;
      case StmtKind::kMacro:
        frames_.back()[stmt.name] = DefineMacro(stmt);
        return Flow::kNormal;
      case StmtKind::kScope: {
        Frame scope;
        for (const auto& [target, expr] : stmt.assignments) scope[target.names[0]] = Eval(*expr);
        frames_.push_back(std::move(scope));
        const Flow flow = Exec(stmt.body, out);
        frames_.pop_back();
        return flow;
      }
    }
    return Flow::kNormal;
  }

  // Binds `target` in `frame` (a tuple target unpacks `value`).
  static void Bind(const Target& target, const Value& value, Frame& frame) {
    if (!target.is_tuple) {
      frame[target.names[0]] = value;
      return;
    }
    const std::vector<Value> items = value.Iterate();
    if (items.size() != target.names.size()) {
      throw RenderError(
          "ValueError: " + std::string(items.size() > target.names.size() ? "too many" : "not enough") +
          " values to unpack (expected " + std::to_string(target.names.size()) + ", got " +
          std::to_string(items.size()) + ")");
    }
    for (size_t i = 0; i < items.size(); ++i) frame[target.names[i]] = items[i];
  }

  void Assign(const Target& target, const Value& value) {
    if (target.attribute.empty()) {
      Bind(target, value, frames_.back());
      return;
    }
    const Value object = Lookup(target.names[0]);
    if (object.kind() != Value::Kind::kNamespace) {
      throw RenderError("TemplateRuntimeError: cannot assign attribute on non-namespace object");
    }
    object.name_space().attributes.Set(target.attribute, value);
    const Namespace* written = &object.name_space();
    if (std::none_of(written_namespaces_.begin(), written_namespaces_.end(),
                     [written](const Value& known) { return &known.name_space() == written; })) {
      written_namespaces_.push_back(object);  // once each: a loop writes the same namespace again and again
    }
  }

  static Value LoopObject(const std::vector<Value>& items, size_t i, const Value& cycle) {
    const auto n = static_cast<int64_t>(items.size());
    const auto index = static_cast<int64_t>(i);
    Dict loop;
    loop.Set("index0", index);
    loop.Set("index", index + 1);
    loop.Set("revindex0", n - index - 1);
    loop.Set("revindex", n - index);
    loop.Set("first", i == 0);
    loop.Set("last", index == n - 1);
    loop.Set("length", n);
    loop.Set("depth", 1);
    loop.Set("depth0", 0);
    loop.Set("previtem", i > 0 ? items[i - 1] : Value(Undefined{"there is no previous item"}));
    loop.Set("nextitem", index + 1 < n ? items[i + 1] : Value(Undefined{"there is no next item"}));
    loop.Set("cycle", cycle);
    return Value::MakeDict(std::move(loop));
  }

  Flow ExecFor(const Stmt& stmt, std::string& out) {
    std::vector<Value> items;
    for (Value& item : Eval(*stmt.expr).Iterate()) {
      if (stmt.filter) {
        Frame scope;
        Bind(stmt.target, item, scope);
        frames_.push_back(std::move(scope));
        const bool keep = Eval(*stmt.filter).Truthy();
        frames_.pop_back();
        if (!keep) continue;
      }
      items.push_back(std::move(item));
    }
    for (size_t i = 0; i < items.size(); ++i) {
      Step();
      const Value cycle = Value::Function("cycle", [i](const CallArgs& args) -> Value {
        if (args.positional.empty()) throw RenderError("TypeError: no items for cycling given");
        return args.positional[i % args.positional.size()];
      });
      Frame scope;
      scope["loop"] = LoopObject(items, i, cycle);
      Bind(stmt.target, items[i], scope);
      frames_.push_back(std::move(scope));
      const Flow flow = Exec(stmt.body, out);
      frames_.pop_back();
      if (flow == Flow::kBreak) break;
    }
    if (items.empty()) return Exec(stmt.else_body, out);
    return Flow::kNormal;
  }

  Value DefineMacro(const Stmt& stmt) {
    return Value::Function(stmt.name, [this, &stmt](const CallArgs& args) -> Value {
      if (args.positional.size() > stmt.params.size()) {
        throw RenderError("TypeError: macro '" + stmt.name + "' takes not more than " +
                          std::to_string(stmt.params.size()) + " argument(s)");
      }
      if (++call_depth_ > kMaxCallDepth) throw RenderError("macro calls nest deeper than 64");
      Frame scope;
      for (size_t i = 0; i < stmt.params.size(); ++i) {
        const auto& [name, default_value] = stmt.params[i];
        if (const Value* given = args.Get(i, name)) {
          scope[name] = *given;
        } else {
          scope[name] = default_value ? Eval(*default_value)
                                      : Value(Undefined{"parameter '" + name + "' was not provided"});
        }
      }
      for (const auto& [key, value] : args.keywords) {
        if (!scope.contains(key)) {
          throw RenderError("TypeError: macro '" + stmt.name + "' takes no keyword argument '" + key + "'");
        }
      }
      // The macro sees the template's top-level names and its parameters, not its caller's locals.
      std::vector<Frame> saved = std::move(frames_);
      frames_ = {saved.front(), std::move(scope)};
      std::string text;
      Exec(stmt.body, text);
      saved.front() = std::move(frames_.front());
      frames_ = std::move(saved);
      --call_depth_;
      return text;
    });
  }

  Value Lookup(const std::string& name) const {
    for (auto frame = frames_.rbegin(); frame != frames_.rend(); ++frame) {
      if (auto found = frame->find(name); found != frame->end()) return found->second;
    }
    return LookupGlobal(name);
  }

  CallArgs EvalArgs(const Expr& expr, size_t first) {
    CallArgs args;
    for (size_t i = first; i < expr.args.size(); ++i) args.positional.push_back(Eval(*expr.args[i]));
    for (const auto& [key, value] : expr.keywords) args.keywords.emplace_back(key, Eval(*value));
    return args;
  }

  Value Compare(const Expr& expr) {
    Value left = Eval(*expr.args[0]);
    for (size_t i = 0; i < expr.ops.size(); ++i) {
      Value right = Eval(*expr.args[i + 1]);
      const std::string& op = expr.ops[i];
      bool holds = false;
      if (op == "==") {
        holds = Equal(left, right);
      } else if (op == "!=") {
        holds = !Equal(left, right);
      } else if (op == "<") {
        holds = Less(left, right);
      } else if (op == ">") {
        holds = Less(right, left);
      } else if (op == "<=") {
        holds = Less(left, right) || Equal(left, right);
      } else if (op == ">=") {
        holds = Less(right, left) || Equal(left, right);
      } else if (op == "in") {
        holds = Contains(right, left);
      } else {
        holds = !Contains(right, left);
      }
      if (!holds) return false;
      left = std::move(right);
    }
    return true;
  }

  Value Eval(const Expr& expr) {
    Step();
    switch (expr.kind) {
      case ExprKind::kConstant:
        return expr.constant;
      case ExprKind::kName: {
        Value value = Lookup(expr.name);
        if (value.is_undefined()) return Undefined{"'" + expr.name + "' is undefined"};
        return value;
      }
      case ExprKind::kList:
        return Value::List(EvalArgs(expr, 0).positional, expr.is_tuple);
      case ExprKind::kDict: {
        Dict dict;
        for (size_t i = 0; i + 1 < expr.args.size(); i += 2)
          dict.Set(Eval(*expr.args[i]), Eval(*expr.args[i + 1]));
        return Value::MakeDict(std::move(dict));
      }
      case ExprKind::kAttribute:
        return GetAttribute(Eval(*expr.args[0]), expr.name);
      case ExprKind::kItem: {
        const Value object = Eval(*expr.args[0]);
        const Expr& key = *expr.args[1];
        if (key.kind != ExprKind::kSlice) return GetItem(object, Eval(key));
        const auto part = [&](size_t i) { return key.args[i] ? Eval(*key.args[i]) : Value(None{}); };
        return GetSlice(object, part(0), part(1), part(2));
      }
      case ExprKind::kSlice:
        throw RenderError("a slice outside a subscript");
      case ExprKind::kCall: {
        const Value callee = Eval(*expr.args[0]);
        return CallValue(callee, EvalArgs(expr, 1));
      }
      case ExprKind::kFilter: {
        const Value input = expr.args[0] ? Eval(*expr.args[0]) : std::move(pending_input_);
        return ApplyFilter(expr.name, input, EvalArgs(expr, 1));
      }
      case ExprKind::kTest: {
        const Value input = Eval(*expr.args[0]);
        return ApplyTest(expr.name, input, EvalArgs(expr, 1)) != expr.negated;
      }
      case ExprKind::kNot:
        return !Eval(*expr.args[0]).Truthy();
      case ExprKind::kNegate:
      case ExprKind::kPlus: {
        const Value operand = Eval(*expr.args[0]);
        if (operand.is_undefined()) FailUndefined(operand);
        if (!operand.is_number())
          throw RenderError("TypeError: bad operand type for unary -: '" + operand.TypeName() + "'");
        if (expr.kind == ExprKind::kPlus)
          return operand.is_integer_like() ? Value(operand.integer()) : operand;
        if (operand.kind() == Value::Kind::kFloat) return -operand.number();
        return Arithmetic("-", Value(0), operand);
      }
      case ExprKind::kBinary: {
        const Value left = Eval(*expr.args[0]);
        const Value right = Eval(*expr.args[1]);
        if (expr.name == "~") {
          std::string text = left.Str();
          const std::string right_text = right.Str();
          CheckValueSize(text.size() + right_text.size());
          return text + right_text;
        }
        return Arithmetic(expr.name, left, right);
      }
      case ExprKind::kCompare:
        return Compare(expr);
      case ExprKind::kAnd: {
        Value left = Eval(*expr.args[0]);
        return left.Truthy() ? Eval(*expr.args[1]) : left;
      }
      case ExprKind::kOr: {
        Value left = Eval(*expr.args[0]);
        return left.Truthy() ? left : Eval(*expr.args[1]);
      }
      case ExprKind::kCondition:
        if (Eval(*expr.args[0]).Truthy()) return Eval(*expr.args[1]);
        return expr.args[2] ? Eval(*expr.args[2])
                            : Value(Undefined{"the condition was false and there is no else"});
    }
    return Value();
  }

  std::vector<Frame> frames_;
  Value pending_input_;  // a block set's text, for its filters
  int call_depth_ = 0;
  int64_t steps_ = 0;
  std::vector<Value> written_namespaces_;  // each once; emptied by the destructor
};

}  // namespace

Result<std::string> Render(const Template& tmpl, const Dict& variables) {
  try {
    const RenderWorkScope work;
    return Evaluator(variables).Run(tmpl);
  } catch (const RenderError& error) {
    return InvalidArgument(error.what());
  } catch (const std::bad_alloc&) {  // a value within the bounds, still more than this machine has
    return ResourceExhausted("the template needs more memory than is available");
  }
}

}  // namespace tandem::jinja
