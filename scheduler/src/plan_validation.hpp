// The checks MakePlan runs on its inputs before predicting anything, apart from the cost model so that
// each reads on its own. Pure; internal to tandem_scheduler (planner.hpp states the contract).
#pragma once

#include "tandem/base/status.hpp"
#include "tandem/scheduler/planner.hpp"

namespace tandem::scheduler {

// InvalidArgument naming the first inconsistent input: profile sizes, constraints, negative or
// non-finite times, two tails with one endpoint, draft inputs out of range. The checks run in a fixed order,
// so one bad input always gives the same message.
Status ValidatePlanInputs(const PlanInputs& inputs);

// Objective weights: finite, >= 0 and not both 0 (Objective::Parse shares it).
Status CheckObjectiveWeights(double ttft_weight, double token_weight);

}  // namespace tandem::scheduler
