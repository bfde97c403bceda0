/// Python that both SlideRule client tests' scripts run once they have defined their
/// `BrokerAdapter` (a requests transport adapter): every `requests.Session`, the client's
/// included, gets the adapter when it is created, and the client's log lines are kept in `log`.
enum SlideRuleClientScript {
    static let adapterOnEverySessionAndLogCapture = #"""
        # Every requests.Session, the client's included, gets the adapter when it is created.
        original_init = requests.Session.__init__
        def init_with_broker_adapter(self, *args, **kwargs):
            original_init(self, *args, **kwargs)
            adapter = BrokerAdapter()
            self.mount("https://", adapter)
            self.mount("http://", adapter)
        requests.Session.__init__ = init_with_broker_adapter

        log = []
        class Capture(logging.Handler):
            def emit(self, record):
                log.append(record.levelname + " " + record.getMessage())
        logger = logging.getLogger("sliderule")
        logger.setLevel(logging.DEBUG)
        logger.addHandler(Capture())
        """#
}
