// tandem-edge: the edge agent, an OpenAI-compatible REST API over a model split with a cloud tail.
#include <string>
#include <vector>

#include "tandem/edge_agent/edge_main.hpp"

int main(int argc, char** argv) {
  const std::vector<std::string> args(argv + 1, argv + argc);
  return tandem::edge_agent::RunEdgeService(args);
}
