// The syntax tree of a Jinja template, as the parser builds it and the evaluator walks it.
#pragma once

#include <algorithm>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "jinja/value.hpp"

namespace tandem::jinja {

struct Expr;
using ExprPtr = std::unique_ptr<Expr>;

enum class ExprKind {
  kConstant,   // constant
  kName,       // name
  kList,       // args; tuple when is_tuple
  kDict,       // args: key, value, key, value, ...
  kAttribute,  // args[0].name
  kItem,       // args[0][args[1]]
  kSlice,      // args: start, stop, step (nulls where omitted); only as a kItem's key
  kCall,       // args[0](args[1...], keywords)
  kFilter,     // args[0] | name(args[1...], keywords)
  kTest,       // args[0] is [not] name(args[1...], keywords)
  kNot,        // not args[0]
  kNegate,     // -args[0]
  kPlus,       // +args[0]
  kBinary,     // args[0] name args[1]: + - * / // % ** ~
  kCompare,    // args[0] ops[0] args[1] ops[1] args[2] ...: == != < <= > >= in notin
  kAnd,
  kOr,
  kCondition,  // args[1] if args[0] else args[2] (args[2] null: undefined)
};

struct Expr {
  ExprKind kind = ExprKind::kConstant;
  int line = 0;
  Value constant;
  std::string name;
  bool is_tuple = false;
  bool negated = false;
  std::vector<ExprPtr> args;  // may hold nulls (slices, a condition without else)
  std::vector<std::pair<std::string, ExprPtr>> keywords;
  std::vector<std::string> ops;
  int depth = 1;  // of the tree below and including this node

  // The parser builds every node through these, which keep `depth` and refuse a tree deeper than
  // kMaxExprDepth: evaluating and destroying a tree recurse once per level, and a hostile template
  // ("a.b.c.d…" many thousand times) must not exhaust the stack.
  static constexpr int kMaxExprDepth = 256;
  void Add(ExprPtr child) {
    Deepen(child.get());
    args.push_back(std::move(child));
  }
  void AddKeyword(std::string key, ExprPtr value) {
    Deepen(value.get());
    keywords.emplace_back(std::move(key), std::move(value));
  }
  void SetArgs(std::vector<ExprPtr> children) {
    for (const ExprPtr& child : children) Deepen(child.get());
    args = std::move(children);
  }

 private:
  void Deepen(const Expr* child) {
    if (child == nullptr) return;
    depth = std::max(depth, child->depth + 1);
    if (depth > kMaxExprDepth) throw std::length_error("an expression nests deeper than 256 levels");
  }
};

struct Stmt;
using StmtPtr = std::unique_ptr<Stmt>;
using Body = std::vector<StmtPtr>;

enum class StmtKind {
  kText,      // text
  kPrint,     // {{ expr }}
  kIf,        // branches
  kFor,       // for target in expr [if filter]: body [else: else_body]
  kSet,       // set target = expr; or target.attribute = expr on a namespace
  kSetBlock,  // set target %}body{% endset, filtered by `filter` (a kFilter chain on a null input) if any
  kBreak,
  kContinue,
  kMacro,  // macro name(params) body
  kScope,  // with/generation: body in a new scope after `assignments`
};

// Names assigned by for/set: one name, or a tuple of names; or `names[0].attribute`.
struct Target {
  std::vector<std::string> names;
  bool is_tuple = false;
  std::string attribute;
};

struct Stmt {
  StmtKind kind = StmtKind::kText;
  int line = 0;
  std::string text;
  ExprPtr expr;
  ExprPtr filter;
  Target target;
  std::vector<std::pair<ExprPtr, Body>> branches;  // if/elif; a null condition for else
  Body body;
  Body else_body;
  std::string name;                                     // macro
  std::vector<std::pair<std::string, ExprPtr>> params;  // macro parameters with defaults (null: none)
  std::vector<std::pair<Target, ExprPtr>> assignments;  // with
};

struct Template {
  Body body;
};

}  // namespace tandem::jinja
