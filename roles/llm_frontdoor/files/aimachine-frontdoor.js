// The front door's routing by model (njs 0.7, Debian 12's libnginx-mod-http-js).
//
// route:  a POST to /v1/<path> names its model in the JSON body; the request goes, body intact,
//         to the named location of the instance serving that model (whose proxy_pass streams the
//         answer). An unknown model gets 404 naming the served models; a model that does not
//         serve the path 400; a body over that model's limit 413 naming the model and its limit.
// health: 200 only when every instance's own /health answers 200; 503 naming those that do not.
//
// The table comes from nginx ($aimachine_routes, rendered at deploy time): {"models": [{"index",
// "name", "paths", "limit", "limit_note"}]}.

function table(r) {
    return JSON.parse(r.variables.aimachine_routes);
}

function reply(r, status, body) {
    r.headersOut['Content-Type'] = 'application/json';
    r.return(status, JSON.stringify(body) + '\n');
}

function fail(r, status, message, code, param) {
    var type = status >= 500 ? 'server_error' : 'invalid_request_error';
    reply(r, status, {error: {message: message, type: type, param: param || null, code: code}});
}

function names(models) {
    return models.map(function (m) { return m.name; }).join(', ');
}

function route(r) {
    var models = table(r).models;
    var path = r.uri.slice('/v1/'.length);
    var serving = models.filter(function (m) { return m.paths.indexOf(path) >= 0; });
    if (r.method !== 'POST') {
        r.headersOut['Allow'] = 'POST';
        return fail(r, 405, '/v1/' + path + ' takes POST.', 'method_not_allowed', null);
    }
    // client_body_buffer_size equals client_max_body_size, so the body is in memory here.
    var raw = r.requestBuffer;
    if (raw === undefined) {
        return fail(r, 413, 'Request body too large to route.', 'request_too_large', null);
    }
    var body;
    try {
        body = JSON.parse(r.requestText);
    } catch (e) {
        return fail(r, 400, 'The request body is not valid JSON.', 'invalid_json', null);
    }
    var name = (body !== null && typeof body === 'object') ? body.model : undefined;
    var target;
    if (name === undefined || name === null) {
        if (serving.length !== 1) {
            return fail(r, 400, '`model` is required; /v1/' + path + ' serves: ' + names(serving) + '.',
                        'model_required', 'model');
        }
        target = serving[0];
    } else if (typeof name !== 'string') {
        return fail(r, 400, '`model` must be a string; served models: ' + names(models) + '.',
                    'invalid_model', 'model');
    } else {
        target = serving.find(function (m) { return m.name === name; });
        if (target === undefined) {
            if (models.find(function (m) { return m.name === name; })) {
                return fail(r, 400, 'The model `' + name + '` does not serve /v1/' + path
                            + '; models that do: ' + (names(serving) || 'none') + '.',
                            'unsupported_endpoint', 'model');
            }
            return fail(r, 404, 'The model `' + name + '` does not exist. Served models: '
                        + names(models) + '.', 'model_not_found', 'model');
        }
    }
    if (raw.length > target.limit) {
        return fail(r, 413, 'Request body too large for model `' + target.name + '`: ' + raw.length
                    + ' bytes, its limit is ' + target.limit + ' bytes (' + target.limit_note
                    + '). A prompt that long cannot fit its context.', 'request_too_large', null);
    }
    r.internalRedirect('@aimachine_up_' + target.index);
}

function health(r) {
    var models = table(r).models;
    var checks = models.map(function (m) {
        return r.subrequest('/_aimachine/health/' + m.index, {method: 'GET'})
            .then(function (res) { return res.status; }, function () { return 0; });
    });
    Promise.all(checks).then(function (statuses) {
        var report = {};
        var healthy = true;
        models.forEach(function (m, i) {
            report[m.name] = statuses[i] === 200 ? 'ok' : 'HTTP ' + statuses[i];
            healthy = healthy && statuses[i] === 200;
        });
        reply(r, healthy ? 200 : 503, {status: healthy ? 'ok' : 'unhealthy', models: report});
    });
}

export default {route: route, health: health};
