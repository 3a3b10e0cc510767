// cozy/sdk.hpp — everything a plugin needs, in one include.
#pragma once

#include <cozy/check.hpp>
#include <cozy/context.hpp>
#include <cozy/dataset.hpp>
#include <cozy/error.hpp>
#include <cozy/files.hpp>
#include <cozy/layout.hpp>
#include <cozy/literal.hpp>
#include <cozy/models.hpp>
#include <cozy/node.hpp>
#include <cozy/plugin.hpp>
#include <cozy/random.hpp>
#include <cozy/spec.hpp>
#include <cozy/value.hpp>
#include <cozy/version.hpp>
