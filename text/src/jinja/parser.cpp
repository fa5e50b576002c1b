#include "jinja/parser.hpp"

#include <algorithm>
#include <initializer_list>
#include <string_view>
#include <utility>

#include "jinja/builtins.hpp"
#include "jinja/lexer.hpp"

namespace tandem::jinja {
namespace {

// jinja2's own tags that Tandem does not implement: refused with that reason rather than as unknown.
constexpr std::string_view kUnsupportedTags[] = {"extends", "block", "include",    "import", "from", "call",
                                                 "filter",  "raw",   "autoescape", "do",     "trans"};

struct SyntaxError {
  std::string message;
  int line;
};

ExprPtr MakeExpr(ExprKind kind, int line) {
  auto expr = std::make_unique<Expr>();
  expr->kind = kind;
  expr->line = line;
  return expr;
}

class Parser {
 public:
  explicit Parser(std::vector<Token> tokens) : tokens_(std::move(tokens)) {}

  Template Run() {
    Template tmpl;
    std::string end;
    tmpl.body = ParseBody({}, &end);
    return tmpl;
  }

 private:
  const Token& Current() const { return tokens_[pos_]; }
  const Token& Peek(size_t ahead = 1) const { return tokens_[std::min(pos_ + ahead, tokens_.size() - 1)]; }
  Token Next() {
    Token token = tokens_[pos_];
    if (pos_ + 1 < tokens_.size()) ++pos_;
    return token;
  }
  [[noreturn]] void Fail(const std::string& message) const { throw SyntaxError{message, Current().line}; }

  // Parsing recurses once per nested block, parenthesis, bracket, brace, unary operator or `not`; a hostile
  // template must not exhaust the stack before Expr::Add sees the depth.
  static constexpr int kMaxNesting = 200;
  class Nested {
   public:
    explicit Nested(Parser& parser) : parser_(parser) {
      if (++parser_.nesting_ > kMaxNesting) parser_.Fail("the template nests deeper than 200 levels");
    }
    ~Nested() { --parser_.nesting_; }
    Nested(const Nested&) = delete;
    Nested& operator=(const Nested&) = delete;

   private:
    Parser& parser_;
  };

  bool IsOp(std::string_view op) const {
    return Current().kind == Token::Kind::kOperator && Current().text == op;
  }
  bool IsName(std::string_view name) const {
    return Current().kind == Token::Kind::kName && Current().text == name;
  }
  bool SkipOp(std::string_view op) {
    if (!IsOp(op)) return false;
    Next();
    return true;
  }
  bool SkipName(std::string_view name) {
    if (!IsName(name)) return false;
    Next();
    return true;
  }
  void ExpectOp(std::string_view op) {
    if (!SkipOp(op)) Fail("expected '" + std::string(op) + "'" + Found());
  }
  void ExpectBlockEnd() {
    if (Current().kind != Token::Kind::kBlockEnd) Fail("expected the end of the statement ('%}')" + Found());
    Next();
  }
  std::string ExpectName() {
    if (Current().kind != Token::Kind::kName) Fail("expected a name" + Found());
    return Next().text;
  }
  std::string Found() const {
    switch (Current().kind) {
      case Token::Kind::kEnd:
        return ", found the end of the template";
      case Token::Kind::kBlockEnd:
        return ", found '%}'";
      case Token::Kind::kVariableEnd:
        return ", found '}}'";
      case Token::Kind::kData:
        return ", found template text";
      default:
        return ", found '" + Current().text + "'";
    }
  }

  // Statements until `{% <one of ends>`, whose name is consumed and stored in *end.
  Body ParseBody(std::initializer_list<std::string_view> ends, std::string* end) {
    Body body;
    while (true) {
      const Token& token = Current();
      switch (token.kind) {
        case Token::Kind::kEnd:
          if (ends.size() == 0) return body;
          Fail("unexpected end of template: '{% " + std::string(*(ends.end() - 1)) + " %}' is missing");
        case Token::Kind::kData: {
          auto stmt = std::make_unique<Stmt>();
          stmt->kind = StmtKind::kText;
          stmt->line = token.line;
          stmt->text = Next().text;
          body.push_back(std::move(stmt));
          break;
        }
        case Token::Kind::kVariableBegin: {
          auto stmt = std::make_unique<Stmt>();
          stmt->kind = StmtKind::kPrint;
          stmt->line = Next().line;
          stmt->expr = ParseTuple(true, {}, false);
          if (Current().kind != Token::Kind::kVariableEnd) Fail("expected '}}'" + Found());
          Next();
          body.push_back(std::move(stmt));
          break;
        }
        case Token::Kind::kBlockBegin: {
          Next();
          if (Current().kind != Token::Kind::kName) Fail("expected a statement name" + Found());
          const std::string name = Current().text;
          if (std::find(ends.begin(), ends.end(), name) != ends.end()) {
            Next();
            *end = name;
            return body;
          }
          body.push_back(ParseStatement());
          break;
        }
        default:
          Fail("unexpected token" + Found());
      }
    }
  }

  StmtPtr ParseStatement() {
    const Nested nested(*this);
    auto stmt = std::make_unique<Stmt>();
    stmt->line = Current().line;
    const std::string name = Next().text;
    if (name == "if") return ParseIf(std::move(stmt));
    if (name == "for") return ParseFor(std::move(stmt));
    if (name == "set") return ParseSet(std::move(stmt));
    if (name == "macro") return ParseMacro(std::move(stmt));
    if (name == "with" || name == "generation") return ParseScope(std::move(stmt), name);
    if (name == "break" || name == "continue") {
      if (loop_depth_ == 0) Fail("'" + name + "' outside a for loop");
      stmt->kind = name == "break" ? StmtKind::kBreak : StmtKind::kContinue;
      ExpectBlockEnd();
      return stmt;
    }
    for (std::string_view unsupported : kUnsupportedTags) {
      if (name == unsupported) Fail("the '" + name + "' tag is not supported by Tandem's Jinja interpreter");
    }
    Fail("unknown tag '" + name + "'");
  }

  StmtPtr ParseIf(StmtPtr stmt) {
    stmt->kind = StmtKind::kIf;
    ExprPtr condition = ParseTuple(false, {}, false);
    while (true) {
      ExpectBlockEnd();
      std::string end;
      Body body = ParseBody({"elif", "else", "endif"}, &end);
      stmt->branches.emplace_back(std::move(condition), std::move(body));
      if (end == "elif") {
        condition = ParseTuple(false, {}, false);
      } else if (end == "else") {
        ExpectBlockEnd();
        stmt->else_body = ParseBody({"endif"}, &end);
        ExpectBlockEnd();
        return stmt;
      } else {
        ExpectBlockEnd();
        return stmt;
      }
    }
  }

  Target ParseTarget(bool with_namespace, std::string_view end_name) {
    Target target;
    const bool parenthesized = SkipOp("(");
    while (true) {
      target.names.push_back(ExpectName());
      if (with_namespace && target.names.size() == 1 && SkipOp(".")) {
        target.attribute = ExpectName();
        return target;
      }
      if (!SkipOp(",")) break;
      target.is_tuple = true;
      if (IsOp(")") || IsOp("=") || IsName(end_name)) break;
    }
    if (parenthesized) {
      target.is_tuple = true;
      ExpectOp(")");
    }
    return target;
  }

  StmtPtr ParseFor(StmtPtr stmt) {
    stmt->kind = StmtKind::kFor;
    stmt->target = ParseTarget(false, "in");
    if (!SkipName("in")) Fail("expected 'in'" + Found());
    stmt->expr = ParseTuple(false, {"recursive"}, false);
    if (SkipName("if")) stmt->filter = ParseExpression(true);
    if (IsName("recursive")) Fail("recursive for loops are not supported by Tandem's Jinja interpreter");
    ExpectBlockEnd();
    ++loop_depth_;
    std::string end;
    stmt->body = ParseBody({"endfor", "else"}, &end);
    --loop_depth_;
    if (end == "else") {
      ExpectBlockEnd();
      stmt->else_body = ParseBody({"endfor"}, &end);
    }
    ExpectBlockEnd();
    return stmt;
  }

  StmtPtr ParseSet(StmtPtr stmt) {
    stmt->target = ParseTarget(true, "");
    if (SkipOp("=")) {
      stmt->kind = StmtKind::kSet;
      stmt->expr = ParseTuple(true, {}, false);
      ExpectBlockEnd();
      return stmt;
    }
    if (stmt->target.is_tuple || !stmt->target.attribute.empty()) Fail("expected '='" + Found());
    stmt->kind = StmtKind::kSetBlock;
    if (IsOp("|")) stmt->filter = ParseFilters(nullptr);
    ExpectBlockEnd();
    std::string end;
    stmt->body = ParseBody({"endset"}, &end);
    ExpectBlockEnd();
    return stmt;
  }

  StmtPtr ParseMacro(StmtPtr stmt) {
    stmt->kind = StmtKind::kMacro;
    stmt->name = ExpectName();
    ExpectOp("(");
    while (!SkipOp(")")) {
      if (!stmt->params.empty()) ExpectOp(",");
      if (SkipOp(")")) break;
      std::string param = ExpectName();
      ExprPtr default_value = SkipOp("=") ? ParseExpression(true) : nullptr;
      stmt->params.emplace_back(std::move(param), std::move(default_value));
    }
    ExpectBlockEnd();
    const int outer_loops = std::exchange(loop_depth_, 0);
    std::string end;
    stmt->body = ParseBody({"endmacro"}, &end);
    loop_depth_ = outer_loops;
    ExpectBlockEnd();
    return stmt;
  }

  StmtPtr ParseScope(StmtPtr stmt, const std::string& name) {
    stmt->kind = StmtKind::kScope;
    while (name == "with" && Current().kind != Token::Kind::kBlockEnd) {
      if (!stmt->assignments.empty()) ExpectOp(",");
      Target target = ParseTarget(false, "");
      ExpectOp("=");
      stmt->assignments.emplace_back(std::move(target), ParseExpression(true));
    }
    ExpectBlockEnd();
    std::string end;
    stmt->body = ParseBody({name == "with" ? "endwith" : "endgeneration"}, &end);
    ExpectBlockEnd();
    return stmt;
  }

  bool IsTupleEnd(std::initializer_list<std::string_view> extra_ends) const {
    const Token::Kind kind = Current().kind;
    if (kind == Token::Kind::kVariableEnd || kind == Token::Kind::kBlockEnd || IsOp(")")) return true;
    return std::any_of(extra_ends.begin(), extra_ends.end(),
                       [&](std::string_view end) { return IsName(end); });
  }

  ExprPtr ParseTuple(bool with_condition, std::initializer_list<std::string_view> extra_ends,
                     bool explicit_parentheses) {
    const int line = Current().line;
    std::vector<ExprPtr> items;
    bool is_tuple = false;
    while (true) {
      if (!items.empty()) ExpectOp(",");
      if (IsTupleEnd(extra_ends)) break;
      items.push_back(ParseExpression(with_condition));
      if (!IsOp(",")) break;
      is_tuple = true;
    }
    if (!is_tuple) {
      if (!items.empty()) return std::move(items[0]);
      if (!explicit_parentheses) Fail("expected an expression" + Found());
    }
    auto tuple = MakeExpr(ExprKind::kList, line);
    tuple->is_tuple = true;
    tuple->SetArgs(std::move(items));
    return tuple;
  }

  ExprPtr ParseExpression(bool with_condition) {
    if (!with_condition) return ParseOr();
    ExprPtr expr = ParseOr();
    while (IsName("if")) {
      const int line = Next().line;
      auto condition = MakeExpr(ExprKind::kCondition, line);
      condition->Add(ParseOr());
      condition->Add(std::move(expr));
      condition->Add(SkipName("else") ? ParseExpression(true) : nullptr);
      expr = std::move(condition);
    }
    return expr;
  }

  ExprPtr Binary(ExprKind kind, std::string op, ExprPtr left, ExprPtr right) {
    auto expr = MakeExpr(kind, left->line);
    expr->name = std::move(op);
    expr->Add(std::move(left));
    expr->Add(std::move(right));
    return expr;
  }

  ExprPtr ParseOr() {
    ExprPtr left = ParseAnd();
    while (SkipName("or")) left = Binary(ExprKind::kOr, "or", std::move(left), ParseAnd());
    return left;
  }
  ExprPtr ParseAnd() {
    ExprPtr left = ParseNot();
    while (SkipName("and")) left = Binary(ExprKind::kAnd, "and", std::move(left), ParseNot());
    return left;
  }
  ExprPtr ParseNot() {
    if (!IsName("not")) return ParseCompare();
    const Nested nested(*this);
    auto expr = MakeExpr(ExprKind::kNot, Next().line);
    expr->Add(ParseNot());
    return expr;
  }

  ExprPtr ParseCompare() {
    ExprPtr first = ParseMath1();
    auto compare = MakeExpr(ExprKind::kCompare, first->line);
    compare->Add(std::move(first));
    while (true) {
      if (Current().kind == Token::Kind::kOperator &&
          (IsOp("==") || IsOp("!=") || IsOp("<") || IsOp("<=") || IsOp(">") || IsOp(">="))) {
        compare->ops.push_back(Next().text);
      } else if (SkipName("in")) {
        compare->ops.emplace_back("in");
      } else if (IsName("not") && Peek().kind == Token::Kind::kName && Peek().text == "in") {
        Next();
        Next();
        compare->ops.emplace_back("notin");
      } else {
        break;
      }
      compare->Add(ParseMath1());
    }
    if (compare->ops.empty()) return std::move(compare->args[0]);
    return compare;
  }

  ExprPtr ParseMath1() {
    ExprPtr left = ParseConcat();
    while (IsOp("+") || IsOp("-")) {
      std::string op = Next().text;
      left = Binary(ExprKind::kBinary, std::move(op), std::move(left), ParseConcat());
    }
    return left;
  }
  ExprPtr ParseConcat() {
    ExprPtr left = ParseMath2();
    while (SkipOp("~")) left = Binary(ExprKind::kBinary, "~", std::move(left), ParseMath2());
    return left;
  }
  ExprPtr ParseMath2() {
    ExprPtr left = ParsePow();
    while (IsOp("*") || IsOp("/") || IsOp("//") || IsOp("%")) {
      std::string op = Next().text;
      left = Binary(ExprKind::kBinary, std::move(op), std::move(left), ParsePow());
    }
    return left;
  }
  ExprPtr ParsePow() {
    ExprPtr left = ParseUnary(true);
    while (SkipOp("**")) left = Binary(ExprKind::kBinary, "**", std::move(left), ParseUnary(true));
    return left;
  }

  ExprPtr ParseUnary(bool with_filter) {
    ExprPtr expr;
    if (IsOp("-") || IsOp("+")) {
      const Nested nested(*this);
      const bool negate = IsOp("-");
      expr = MakeExpr(negate ? ExprKind::kNegate : ExprKind::kPlus, Next().line);
      expr->Add(ParseUnary(false));
    } else {
      expr = ParsePrimary();
    }
    expr = ParsePostfix(std::move(expr));
    return with_filter ? ParseFilterExpr(std::move(expr)) : std::move(expr);
  }

  ExprPtr ParsePrimary();
  ExprPtr ParsePostfix(ExprPtr expr);
  ExprPtr ParseSubscribed();
  ExprPtr ParseCall(ExprPtr callee);
  void ParseCallArgs(Expr& call);
  ExprPtr ParseFilterExpr(ExprPtr expr);
  ExprPtr ParseFilters(ExprPtr input);
  ExprPtr ParseTest(ExprPtr input);
  std::string DottedName() {
    std::string name = ExpectName();
    while (SkipOp(".")) name += "." + ExpectName();
    return name;
  }

  std::vector<Token> tokens_;
  size_t pos_ = 0;
  int loop_depth_ = 0;
  int nesting_ = 0;  // Nested guards in progress
};

ExprPtr Parser::ParsePrimary() {
  const Nested nested(*this);
  const Token& token = Current();
  auto expr = MakeExpr(ExprKind::kConstant, token.line);
  switch (token.kind) {
    case Token::Kind::kName: {
      const std::string name = Next().text;
      if (name == "true" || name == "True") {
        expr->constant = true;
      } else if (name == "false" || name == "False") {
        expr->constant = false;
      } else if (name == "none" || name == "None") {
        expr->constant = None{};
      } else {
        expr->kind = ExprKind::kName;
        expr->name = name;
      }
      return expr;
    }
    case Token::Kind::kString: {
      std::string text;
      while (Current().kind == Token::Kind::kString) text += Next().text;  // adjacent literals concatenate
      expr->constant = std::move(text);
      return expr;
    }
    case Token::Kind::kInteger:
      expr->constant = Next().integer;
      return expr;
    case Token::Kind::kFloat:
      expr->constant = Next().number;
      return expr;
    default:
      break;
  }
  if (SkipOp("(")) {
    ExprPtr inner = ParseTuple(true, {}, true);
    ExpectOp(")");
    return inner;
  }
  const bool list = IsOp("[");
  if (!list && !IsOp("{")) Fail("unexpected token" + Found());
  Next();
  expr->kind = list ? ExprKind::kList : ExprKind::kDict;
  const std::string_view close = list ? "]" : "}";
  while (!SkipOp(close)) {
    if (!expr->args.empty()) ExpectOp(",");
    if (SkipOp(close)) break;
    expr->Add(ParseExpression(true));
    if (!list) {
      ExpectOp(":");
      expr->Add(ParseExpression(true));
    }
  }
  return expr;
}

ExprPtr Parser::ParsePostfix(ExprPtr expr) {
  while (true) {
    if (IsOp(".")) {
      const int line = Next().line;
      if (Current().kind == Token::Kind::kInteger) {
        auto item = MakeExpr(ExprKind::kItem, line);
        auto key = MakeExpr(ExprKind::kConstant, line);
        key->constant = Next().integer;
        item->Add(std::move(expr));
        item->Add(std::move(key));
        expr = std::move(item);
        continue;
      }
      auto attribute = MakeExpr(ExprKind::kAttribute, line);
      attribute->name = ExpectName();
      attribute->Add(std::move(expr));
      expr = std::move(attribute);
    } else if (IsOp("[")) {
      const int line = Next().line;
      std::vector<ExprPtr> keys;
      while (!SkipOp("]")) {
        if (!keys.empty()) ExpectOp(",");
        keys.push_back(ParseSubscribed());
      }
      if (keys.empty()) Fail("expected a subscript");
      auto item = MakeExpr(ExprKind::kItem, line);
      item->Add(std::move(expr));
      if (keys.size() == 1) {
        item->Add(std::move(keys[0]));
      } else {
        auto tuple = MakeExpr(ExprKind::kList, line);
        tuple->is_tuple = true;
        tuple->SetArgs(std::move(keys));
        item->Add(std::move(tuple));
      }
      expr = std::move(item);
    } else if (IsOp("(")) {
      expr = ParseCall(std::move(expr));
    } else {
      return expr;
    }
  }
}

ExprPtr Parser::ParseSubscribed() {
  const int line = Current().line;
  auto slice = MakeExpr(ExprKind::kSlice, line);
  if (!SkipOp(":")) {
    ExprPtr start = ParseExpression(true);
    if (!SkipOp(":")) return start;
    slice->Add(std::move(start));
  } else {
    slice->Add(nullptr);
  }
  const auto part = [&] { return IsOp(":") || IsOp("]") || IsOp(",") ? nullptr : ParseExpression(true); };
  slice->Add(part());
  slice->Add(SkipOp(":") ? part() : nullptr);
  return slice;
}

ExprPtr Parser::ParseCall(ExprPtr callee) {
  if (callee->kind == ExprKind::kAttribute && !IsKnownMethod(callee->name)) {
    Fail("unknown method '" + callee->name + "'");
  }
  auto call = MakeExpr(ExprKind::kCall, Current().line);
  call->Add(std::move(callee));
  ParseCallArgs(*call);
  return call;
}

void Parser::ParseCallArgs(Expr& call) {
  ExpectOp("(");
  bool first = true;
  while (!SkipOp(")")) {
    if (!first) ExpectOp(",");
    first = false;
    if (SkipOp(")")) break;
    if (IsOp("*") || IsOp("**")) Fail("*args and **kwargs in calls are not supported");
    if (Current().kind == Token::Kind::kName && Peek().kind == Token::Kind::kOperator && Peek().text == "=") {
      std::string key = Next().text;
      Next();
      call.AddKeyword(std::move(key), ParseExpression(true));
    } else {
      if (!call.keywords.empty()) Fail("a positional argument after a keyword argument");
      call.Add(ParseExpression(true));
    }
  }
}

ExprPtr Parser::ParseFilterExpr(ExprPtr expr) {
  while (true) {
    if (IsOp("|")) {
      expr = ParseFilters(std::move(expr));
    } else if (IsName("is")) {
      expr = ParseTest(std::move(expr));
    } else if (IsOp("(")) {
      expr = ParseCall(std::move(expr));
    } else {
      return expr;
    }
  }
}

// `| name(args) | name ...`: on `input`, or on nothing (a block set's filters).
ExprPtr Parser::ParseFilters(ExprPtr input) {
  while (SkipOp("|")) {
    const int line = Current().line;
    auto filter = MakeExpr(ExprKind::kFilter, line);
    filter->name = DottedName();
    if (!IsKnownFilter(filter->name)) throw SyntaxError{"unknown filter '" + filter->name + "'", line};
    filter->Add(std::move(input));
    if (IsOp("(")) ParseCallArgs(*filter);
    input = std::move(filter);
  }
  return input;
}

ExprPtr Parser::ParseTest(ExprPtr input) {
  Next();  // is
  const bool negated = SkipName("not");
  const int line = Current().line;
  auto test = MakeExpr(ExprKind::kTest, line);
  test->name = DottedName();
  if (!IsKnownTest(test->name)) throw SyntaxError{"unknown test '" + test->name + "'", line};
  test->negated = negated;
  test->Add(std::move(input));
  const Token::Kind kind = Current().kind;
  if (IsOp("(")) {
    ParseCallArgs(*test);
  } else if ((kind == Token::Kind::kName || kind == Token::Kind::kString || kind == Token::Kind::kInteger ||
              kind == Token::Kind::kFloat || IsOp("[") || IsOp("{")) &&
             !IsName("else") && !IsName("or") && !IsName("and")) {
    if (IsName("is")) Fail("tests cannot be chained with 'is'");
    test->Add(ParsePostfix(ParsePrimary()));
  }
  return test;
}

}  // namespace

Result<Template> Parse(const std::string& source) {
  TANDEM_ASSIGN_OR_RETURN(std::vector<Token> tokens, Tokenize(source));
  try {
    return Parser(std::move(tokens)).Run();
  } catch (const SyntaxError& error) {
    return InvalidArgument(error.message + " (line " + std::to_string(error.line) + ")");
  } catch (const std::length_error& error) {  // Expr::Add: a tree too deep
    return InvalidArgument(error.what());
  }
}

}  // namespace tandem::jinja
