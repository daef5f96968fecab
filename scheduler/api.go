package scheduler

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
)

// authorizeFix is how to fill a handler's missing Authorize option.
const authorizeFix = "pass your admin check or scheduler.BearerToken(os.Getenv(\"ADMIN_TOKEN\"))"

// check is problem as an error when ok is false, nil otherwise.
func check(ok bool, problem string) error {
	if ok {
		return nil
	}
	return errors.New(problem)
}

// invalid wraps every problem found (nil ones are none) in ErrInvalidConfig, or is nil.
func invalid(problems ...error) error {
	if err := errors.Join(problems...); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	return nil
}

// apiMux serves routes ("METHOD /path" patterns) behind authorize. A path of a route asked
// with another method gets a JSON 405 whose Allow header lists the methods the path takes
// (GET brings HEAD); any other path gets a JSON 404.
func apiMux(authorize Authorizer, routes map[string]http.HandlerFunc) http.Handler {
	mux := http.NewServeMux()
	allow := map[string][]string{}
	for pattern, h := range routes {
		mux.HandleFunc(pattern, h)
		method, path, _ := strings.Cut(pattern, " ")
		allow[path] = append(allow[path], method)
		if method == http.MethodGet {
			allow[path] = append(allow[path], http.MethodHead)
		}
	}
	for path, methods := range allow {
		slices.Sort(methods)
		mux.HandleFunc(path, methodNotAllowed(strings.Join(methods, ", ")))
	}
	mux.HandleFunc("/", notFound)
	return guard(authorize, mux)
}

// notFound answers a path no route of the API serves.
func notFound(w http.ResponseWriter, _ *http.Request) {
	writeError(w, http.StatusNotFound, "not found")
}

func methodNotAllowed(allow string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Allow", allow)
		writeError(w, http.StatusMethodNotAllowed, "method "+r.Method+" not allowed; use "+allow)
	}
}

// guard authorizes every request before h: 401 (with WWW-Authenticate) or 403, as JSON.
func guard(authorize Authorizer, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := authorize(r); err != nil {
			if errors.Is(err, ErrForbidden) {
				writeError(w, http.StatusForbidden, ErrForbidden.Error())
				return
			}
			w.Header().Set("WWW-Authenticate", `Bearer realm="renewkit admin"`)
			writeError(w, http.StatusUnauthorized, ErrUnauthenticated.Error())
			return
		}
		h.ServeHTTP(w, r)
	})
}
