// tocsin webhook media type for Zabbix (5.4 and later).
//
// Zabbix runs this for every notification the tocsin media type sends: it reads the media type's
// parameters (`value`, a JSON object of strings with Zabbix's macros already resolved), sends them to
// tocsin as one JSON object, and answers "OK" once tocsin has the event (HTTP 2xx). Anything else is
// thrown, so Zabbix shows the error on the action log and retries as the media type allows.
//
// Parameters "url", "token" and "http_proxy" configure the sending; they are not sent. Every other
// parameter is sent under its own name, so you may add your own (they are kept with the alert).
try {
    var params = JSON.parse(value);

    if (typeof params.url !== 'string' || !/^https?:\/\//.test(params.url)) {
        throw 'parameter "url" must be the tocsin source URL (http:// or https://).';
    }

    var body = { version: '1' };
    var unsent = { url: true, token: true, http_proxy: true };
    for (var name in params) {
        if (params.hasOwnProperty(name) && !unsent[name]) {
            body[name] = params[name];
        }
    }

    // {EVENT.TAGSJSON} arrives as text; tocsin takes the array itself.
    if (typeof params.event_tags === 'string' && params.event_tags.charAt(0) === '[') {
        try {
            body.event_tags = JSON.parse(params.event_tags);
        }
        catch (error) {
            // Keep the text: tocsin also reads "tag:value, tag:value".
        }
    }

    // A link back to the problem in Zabbix's frontend, when {$ZABBIX.URL} is set.
    if (typeof params.zabbix_url === 'string' && /^https?:\/\//.test(params.zabbix_url)
            && /^\d+$/.test(params.trigger_id) && /^\d+$/.test(params.event_id)) {
        body.link = params.zabbix_url.replace(/\/+$/, '') + '/tr_events.php?triggerid='
            + params.trigger_id + '&eventid=' + params.event_id;
    }

    var request = new HttpRequest();
    if (typeof params.http_proxy === 'string' && params.http_proxy.trim() !== '') {
        request.setProxy(params.http_proxy.trim());
    }
    request.addHeader('Content-Type: application/json');
    if (typeof params.token === 'string' && params.token !== '') {
        request.addHeader('Authorization: Bearer ' + params.token);
    }

    Zabbix.log(4, '[tocsin webhook] sending event ' + params.event_id);
    var response = request.post(params.url, JSON.stringify(body));
    var status = request.getStatus();
    Zabbix.log(4, '[tocsin webhook] HTTP ' + status + ': ' + response);

    if (status < 200 || status >= 300) {
        throw 'HTTP ' + status + ': ' + response;
    }
    return 'OK';
}
catch (error) {
    Zabbix.log(3, '[tocsin webhook] notification failed: ' + error);
    throw 'tocsin notification failed: ' + error;
}
