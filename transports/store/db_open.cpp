// SPDX-License-Identifier: MIT
// Database::open: the URL's scheme picks the backend.
#include <fmt/format.h>

#include "db_impl.hpp"

namespace switchyard::store {

std::unique_ptr<Database> Database::open(std::string_view url, int connect_timeout_s) {
  std::string u(url);
  if (u.rfind("sqlite://", 0) == 0) {
    return openSqlite(u.substr(9), u);
  }
  if (u.rfind("sqlite:", 0) == 0) {
    return openSqlite(u.substr(7), u);
  }
  if (u.rfind("postgresql://", 0) == 0 || u.rfind("postgres://", 0) == 0) {
#ifdef SY_STORE_HAVE_PQ
    return openPostgres(u, connect_timeout_s);
#else
    throw DbError(fmt::format("{}: this switchyard was built without PostgreSQL support (libpq); rebuild with "
                              "libpq-dev installed, or use sqlite:PATH",
                              redactUrl(u)));
#endif
  }
  throw DbError(fmt::format("'{}' is not a database URL: write sqlite:PATH (a file, created if missing) or "
                            "postgresql://USER:PASSWORD@HOST:PORT/DBNAME",
                            redactUrl(u)));
}

}  // namespace switchyard::store
