// tandem-cloud: serves blocks [k, L) and the head of a model to edge agents over ZeroMQ with CURVE.
#include <string>
#include <vector>

#include "tandem/cloud_tail/cloud_service.hpp"

int main(int argc, char** argv) {
  const std::vector<std::string> args(argv + 1, argv + argc);
  return tandem::cloud_tail::RunCloudService(args);
}
