// tandem-link: a user-space link emulator between the edge and the cloud tail (see link_proxy.hpp).
#include <string>
#include <vector>

#include "tandem/netem/link_tool.hpp"

int main(int argc, char** argv) {
  const std::vector<std::string> args(argv + 1, argv + argc);
  return tandem::netem::RunLinkProxy(args);
}
